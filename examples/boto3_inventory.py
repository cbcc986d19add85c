#!/usr/bin/env python3
"""Inventory of CloudHSM clusters, HSMs and backups, read with boto3's paginators.

    go run ./cmd/cloudhsm-local --in-memory &     # or any running server
    python3 examples/boto3_inventory.py [REGION ...]

CLOUDHSM_ENDPOINT (default http://127.0.0.1:4599) is the server; regions
default to $AWS_DEFAULT_REGION or us-east-1. Any credentials work; a 12-digit
access key id is the account.
"""

import os
import sys

import boto3

ENDPOINT = os.environ.get("CLOUDHSM_ENDPOINT", "http://127.0.0.1:4599")
REGIONS = sys.argv[1:] or [os.environ.get("AWS_DEFAULT_REGION", "us-east-1")]

session = boto3.session.Session(
    aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "123456789012"),
    aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "cloudhsm-local"),
)


def when(ts):
    return ts.strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


n_clusters = n_backups = 0
for region in REGIONS:
    hsm = session.client("cloudhsmv2", region_name=region, endpoint_url=ENDPOINT)

    clusters = [c for page in hsm.get_paginator("describe_clusters").paginate() for c in page["Clusters"]]
    print(f"{region}: {len(clusters)} cluster(s)")
    for c in clusters:
        retention = c.get("BackupRetentionPolicy", {})
        print(
            f"  {c['ClusterId']}  {c['State']:<22} {c['HsmType']:<13} {c.get('Mode', '-'):<8} "
            f"vpc={c.get('VpcId', '-')} retention={retention.get('Value', '-')}d created={when(c.get('CreateTimestamp'))}"
        )
        for h in c.get("Hsms", []):
            print(f"    {h['HsmId']}  {h['State']:<18} {h['AvailabilityZone']:<12} {h.get('EniIp', '-')}")
        tags = {t["Key"]: t["Value"] for t in c.get("TagList", [])}
        if tags:
            print(f"    tags: {tags}")

    backups = [b for page in hsm.get_paginator("describe_backups").paginate() for b in page["Backups"]]
    print(f"{region}: {len(backups)} backup(s)")
    for b in backups:
        origin = f" copied from {b['SourceRegion']}/{b['SourceBackup']}" if b.get("SourceBackup") else ""
        print(
            f"  {b['BackupId']}  {b['BackupState']:<18} cluster={b.get('ClusterId', '-')} "
            f"created={when(b.get('CreateTimestamp'))} never_expires={b.get('NeverExpires', False)}{origin}"
        )

    n_clusters += len(clusters)
    n_backups += len(backups)

print(f"total: {n_clusters} clusters, {n_backups} backups")
