#!/usr/bin/env python3
"""Rewrites a version 0/1 snapshot as version 2, by the table of
docs/snapshot-format.md, independently of the Go reader: the tests compare
what Go reads from each file of a pair (seed-estate.json and
seed-estate.v2.json, v1-export.json and v1-export.v2.json).

    python3 v1_to_v2.py < v1.json > v2.json
"""
import json
import sys

ZERO_TIME = "0001-01-01T00:00:00Z"

CLUSTER = {
    "ID": "clusterId", "HsmType": "hsmType", "Mode": "mode", "NetworkType": "networkType",
    "State": "state", "StateMessage": "stateMessage", "StateBeforeDegraded": "stateBeforeDegraded",
    "Created": "createdAt", "RetentionDays": "backupRetentionDays", "VpcID": "vpcId",
    "SecurityGroup": "securityGroupId", "SourceBackupID": "sourceBackupId", "Csr": "clusterCsr",
    "CsrHsmID": "csrHsmId", "ClusterCertificate": "clusterCertificate", "Due": "transitionDueAt",
    "NextBackup": "nextBackupAt", "TargetHsmType": "migrationTargetHsmType",
    "PreviousHsmType": "previousHsmType", "HsmTypeRollbackExpiration": "hsmTypeRollbackExpiration",
    "ManualActivationPending": "manualActivationPending", "Deleted": "deletedAt",
}
CLUSTER_DROPPED = {"Seq", "Version", "Partition"}
SUBNET = {"ID": "subnetId", "VpcID": "vpcId", "AZ": "availabilityZone", "CIDR": "cidr", "IPv6CIDR": "ipv6Cidr"}
HSM = {
    "ID": "hsmId", "AZ": "availabilityZone", "SubnetID": "subnetId", "EniID": "eniId", "EniIP": "eniIp",
    "EniIPv6": "eniIpV6", "HsmType": "hsmType", "State": "state", "StateMessage": "stateMessage",
    "Created": "createdAt", "Due": "transitionDueAt",
}
IDENTITY = {
    "Serial": "serial", "HardwareKeyPEM": "hardwarePrivateKey", "PartitionKeyPEM": "partitionPrivateKey",
    "HsmCertificate": "hsmCertificate", "AwsHardwareCertificate": "awsHardwareCertificate",
    "ManufacturerHardwareCertificate": "manufacturerHardwareCertificate",
}
BACKUP = {
    "ID": "backupId", "ClusterID": "clusterId", "State": "state", "Created": "createdAt",
    "NeverExpires": "neverExpires", "DeleteTimestamp": "deleteTimestamp", "CopyTimestamp": "copyTimestamp",
    "SourceRegion": "sourceRegion", "SourceBackup": "sourceBackupId", "SourceCluster": "sourceClusterId",
    "HsmType": "hsmType", "Mode": "mode", "ClusterCertificate": "clusterCertificate",
    "Policy": "resourcePolicy", "Due": "transitionDueAt", "PurgedByService": "purgedByService",
    "RetentionDays": "backupRetentionDays", "ExpireAt": "expiresAt",
}
TRANSITION = {"From": "from", "To": "to", "At": "at", "Cause": "cause"}


def empty(v):
    return v in (None, "", 0, False, ZERO_TIME, [], {})


def rename(obj, table, dropped=()):
    out = {}
    for k, v in obj.items():
        if k in dropped:
            continue
        if k not in table:
            sys.exit("no version 2 name for %r" % k)
        if not empty(v):
            out[table[k]] = v
    return out


def tags(ts):
    return [{"key": t["Key"], "value": t["Value"]} for t in ts or []]


def cluster(c):
    special = {"Tenant", "Subnets", "Tags", "Hsms", "History", "SubnetMapping"}
    out = {"account": c["Tenant"]["Account"], "region": c["Tenant"]["Region"]}
    out.update(rename({k: v for k, v in c.items() if k not in special}, CLUSTER, CLUSTER_DROPPED))
    if c.get("Subnets"):
        out["subnets"] = [rename(s, SUBNET) for s in c["Subnets"]]
    if c.get("Tags"):
        out["tags"] = tags(c["Tags"])
    hsms = []
    for h in c.get("Hsms") or []:
        nh = rename({k: v for k, v in h.items() if k != "Identity"}, HSM)
        if h.get("Identity") is not None:
            nh["identity"] = rename(h["Identity"], IDENTITY)
        hsms.append(nh)
    if hsms:
        out["hsms"] = hsms
    if c.get("History"):
        out["history"] = [rename(t, TRANSITION) for t in c["History"]]
    return out


def backup(b):
    if b.get("IsCopy", False) != bool(b.get("SourceBackup")):
        sys.exit("backup %s: IsCopy disagrees with SourceBackup; version 2 derives one from the other" % b.get("ID"))
    out = {"account": b["Tenant"]["Account"], "region": b["Tenant"]["Region"]}
    out.update(rename({k: v for k, v in b.items() if k not in ("Tenant", "Tags", "IsCopy", "Seq")}, BACKUP))
    if b.get("Tags"):
        out["tags"] = tags(b["Tags"])
    return out


def main():
    doc = json.load(sys.stdin)
    out = {"version": 2}
    if not empty(doc.get("time")):
        out["exportedAt"] = doc["time"]
    out["clusters"] = [cluster(c) for c in doc.get("clusters") or []]
    out["backups"] = [backup(b) for b in doc.get("backups") or []]
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


main()
