//! The daemon behind `sender run` and `receiver run`: each job on its cron schedule
//! (tokio-cron-scheduler), never overlapping itself, and a shutdown that starts nothing
//! new and lets a running job finish. The jobs themselves are the synchronous functions
//! the one-shot commands call; they run on blocking threads.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::settings::values::Schedule;

/// How long a running job may take to finish after SIGTERM before the daemon exits anyway
/// (the systemd units' TimeoutStopSec leaves room for it).
pub const GRACE: Duration = Duration::from_secs(300);

/// A job's work, as the one-shot command runs it.
pub type Work = Arc<dyn Fn() + Send + Sync>;

/// One job of the daemon.
pub struct Scheduled {
    pub name: &'static str,
    pub schedule: Schedule,
    pub work: Work,
}

/// Runs `jobs` until `shutdown` resolves, then waits up to `grace` for running jobs.
pub async fn run(
    jobs: Vec<Scheduled>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> anyhow::Result<()> {
    let mut scheduler = JobScheduler::new()
        .await
        .context("start the job scheduler")?;
    let mut running = Vec::new();
    for job in jobs {
        let busy = Arc::new(AtomicBool::new(false));
        running.push((job.name, busy.clone()));
        tracing::info!(job = job.name, schedule = %job.schedule, "scheduled");
        let name = job.name;
        let work = job.work.clone();
        let cron = Job::new_async(job.schedule.cron(), move |_, _| {
            let busy = busy.clone();
            let work = work.clone();
            Box::pin(async move { tick(name, busy, work) })
        })
        .with_context(|| format!("schedule job {name} at {:?}", job.schedule.to_string()))?;
        scheduler
            .add(cron)
            .await
            .with_context(|| format!("schedule job {name}"))?;
    }
    scheduler.start().await.context("start the job scheduler")?;
    tracing::info!("daemon started");
    shutdown.await;
    tracing::info!("shutting down: no new jobs start");
    scheduler
        .shutdown()
        .await
        .context("stop the job scheduler")?;
    wait_for_running(&running, grace).await;
    Ok(())
}

/// One firing: start the job on a blocking thread unless it is still running.
fn tick(name: &'static str, busy: Arc<AtomicBool>, work: Work) {
    if busy.swap(true, Ordering::SeqCst) {
        tracing::warn!(
            job = name,
            "skipped: the previous run of this job is still running"
        );
        return;
    }
    tokio::task::spawn_blocking(move || {
        // Cleared even if the job panics, so one bad run does not stop the schedule.
        let _clear = ClearOnDrop(busy);
        work();
    });
}

struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

async fn wait_for_running(running: &[(&'static str, Arc<AtomicBool>)], grace: Duration) {
    let busy = || -> Vec<&str> {
        running
            .iter()
            .filter(|(_, b)| b.load(Ordering::SeqCst))
            .map(|(n, _)| *n)
            .collect()
    };
    if busy().is_empty() {
        return;
    }
    tracing::info!(jobs = ?busy(), grace_seconds = grace.as_secs(), "waiting for running jobs to finish");
    let deadline = tokio::time::Instant::now() + grace;
    while !busy().is_empty() {
        if tokio::time::Instant::now() >= deadline {
            tracing::error!(jobs = ?busy(), "jobs still running after the grace period; exiting anyway (an interrupted job leaves nothing half-done and is redone by the next run)");
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Listens for SIGTERM and SIGINT from now on; the future resolves on the first.
pub fn termination() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// Builds the runtime and runs the daemon until SIGTERM or SIGINT, then waits up to
/// [`GRACE`] for running jobs.
pub fn run_until_terminated(jobs: Vec<Scheduled>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime.block_on(async {
        // Before anything is scheduled, so an early signal is never the default (fatal) one.
        let shutdown = termination()?;
        run(jobs, shutdown, GRACE).await
    })?;
    // Blocking threads of jobs cut off by the grace period must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
