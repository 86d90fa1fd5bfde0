#!/usr/bin/env python3
"""Set up the S3 server of scripts/testenv.sh (moto in server mode) and prove it enforces auth.

    testenv_s3.py ENDPOINT

While moto still accepts every request unauthenticated (its default), creates with the IAM API
  - pgferry-writer: an inline policy allowing s3:* on *, and an access key;
  - pgferry-reader: an inline policy allowing only s3:ListBucket, s3:GetObject and
    s3:GetBucketLocation on * (a read-only receiver), and an access key;
then switches moto to enforce authentication for every later request (POST /moto-api/reset-auth
with body 0) and proves it: the writer can create a bucket and put, get and delete an object; the
reader can list that bucket but not put into it; a made-up key cannot list.

Prints S3_WRITER_KEY_ID, S3_WRITER_SECRET, S3_READER_KEY_ID and S3_READER_SECRET as KEY=VALUE
lines on stdout (only once everything holds); exits non-zero with a message on stderr otherwise.
"""

import json
import sys
import urllib.request

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

REGION = "us-east-1"
PROBE_BUCKET = "pgferry-testenv-probe"
PROBE_KEY = "probe/hello.txt"
PROBE_BODY = b"pgferry testenv probe\n"

WRITER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}
READER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            # The IAM actions a read-only receiver needs, and moto's own names for the same
            # reads (since 5.2.6 it checks the operation name: ListObjectsV2, HeadObject,
            # HeadBucket). None of them writes.
            "Action": [
                "s3:ListBucket",
                "s3:GetObject",
                "s3:GetBucketLocation",
                "s3:ListObjectsV2",
                "s3:HeadObject",
                "s3:HeadBucket",
            ],
            "Resource": "*",
        }
    ],
}


class ProbeFailed(Exception):
    pass


def client(endpoint, service, key_id, secret):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


def error_code(err):
    return err.response.get("Error", {}).get("Code", "")


def create_user(iam, name, policy):
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def reset_auth(endpoint, unauthenticated_requests):
    """Moto checks credentials on every request once this many more have passed unchecked."""
    # Not urllib's default form content type: Flask would parse the body as a form and moto
    # would read an empty one.
    req = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=unauthenticated_requests.encode(),
        headers={"Content-Type": "text/plain"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        if resp.status != 200:
            raise ProbeFailed(f"POST /moto-api/reset-auth answered {resp.status}")


def expect_denied(what, codes, call):
    try:
        call()
    except ClientError as err:
        if error_code(err) in codes:
            return
        raise ProbeFailed(f"{what}: expected {' or '.join(codes)}, got {error_code(err)}: {err}") from err
    raise ProbeFailed(f"{what} succeeded, but the store must refuse it")


def remove_probe_bucket(s3):
    """Deletes the probe bucket and whatever is in it; no error if it does not exist."""
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=PROBE_BUCKET):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=PROBE_BUCKET, Key=obj["Key"])
        s3.delete_bucket(Bucket=PROBE_BUCKET)
    except ClientError as err:
        if error_code(err) != "NoSuchBucket":
            raise


def probe(writer, reader, stranger):
    writer.create_bucket(Bucket=PROBE_BUCKET)
    writer.put_object(Bucket=PROBE_BUCKET, Key=PROBE_KEY, Body=PROBE_BODY)
    body = writer.get_object(Bucket=PROBE_BUCKET, Key=PROBE_KEY)["Body"].read()
    if body != PROBE_BODY:
        raise ProbeFailed(f"the writer read back {body!r}, not {PROBE_BODY!r}")

    listed = reader.list_objects_v2(Bucket=PROBE_BUCKET)
    keys = [obj["Key"] for obj in listed.get("Contents", [])]
    if keys != [PROBE_KEY]:
        raise ProbeFailed(f"the reader lists {keys}, not [{PROBE_KEY!r}]")
    expect_denied(
        "put_object with the reader key",
        ["AccessDenied"],
        lambda: reader.put_object(Bucket=PROBE_BUCKET, Key="probe/reader.txt", Body=b"no"),
    )
    expect_denied(
        "list_objects_v2 with a made-up key",
        ["InvalidAccessKeyId", "AccessDenied"],
        lambda: stranger.list_objects_v2(Bucket=PROBE_BUCKET),
    )

    writer.delete_object(Bucket=PROBE_BUCKET, Key=PROBE_KEY)
    writer.delete_bucket(Bucket=PROBE_BUCKET)


def main():
    if len(sys.argv) != 2:
        print("usage: testenv_s3.py ENDPOINT", file=sys.stderr)
        return 2
    endpoint = sys.argv[1].rstrip("/")

    # Authentication is not enforced yet: any credentials will do for the IAM calls.
    iam = client(endpoint, "iam", "AKIAPGFERRYSETUP0000", "setup")
    writer_id, writer_secret = create_user(iam, "pgferry-writer", WRITER_POLICY)
    reader_id, reader_secret = create_user(iam, "pgferry-reader", READER_POLICY)

    reset_auth(endpoint, "0")

    writer = client(endpoint, "s3", writer_id, writer_secret)
    reader = client(endpoint, "s3", reader_id, reader_secret)
    stranger = client(endpoint, "s3", "AKIAPGFERRYNOSUCHKEY", "not-a-secret")
    failure = None
    try:
        probe(writer, reader, stranger)
    except (ProbeFailed, ClientError, BotoCoreError) as err:
        failure = err
    finally:
        try:
            remove_probe_bucket(writer)
        except (ClientError, BotoCoreError) as err:
            failure = failure or ProbeFailed(f"the writer cannot delete the probe bucket: {err}")
            # The writer key is what is broken: delete it unauthenticated, then enforce again.
            reset_auth(endpoint, "inf")
            try:
                remove_probe_bucket(client(endpoint, "s3", "AKIAPGFERRYSETUP0000", "setup"))
            finally:
                reset_auth(endpoint, "0")
    if failure is not None:
        print(f"testenv_s3: the S3 server at {endpoint} does not enforce what the tests rely on: {failure}",
              file=sys.stderr)
        return 1

    print(f"S3_WRITER_KEY_ID={writer_id}")
    print(f"S3_WRITER_SECRET={writer_secret}")
    print(f"S3_READER_KEY_ID={reader_id}")
    print(f"S3_READER_SECRET={reader_secret}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
