#!/usr/bin/env python3
"""Cross-client suite of cloudhsm-local through boto3.

Runs every scenario of crossclient/SCENARIOS.md against the server at
$CLOUDHSM_ENDPOINT (a fresh --in-memory server) and prints one JSON line per
scenario: {"client", "version", "scenario", "ok", "outcome", "detail"}.
Exits non-zero if any scenario failed.
"""

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ENDPOINT = os.environ.get("CLOUDHSM_ENDPOINT", "http://127.0.0.1:4599").rstrip("/")

# Nothing from the machine leaks in: no config, no credentials, no profile,
# no other endpoint.
_WORK = tempfile.mkdtemp(prefix="crossclient-boto3-")
_EMPTY = os.path.join(_WORK, "empty")
open(_EMPTY, "w").close()
for var in list(os.environ):
    if var.startswith("AWS_"):
        del os.environ[var]
os.environ["AWS_CONFIG_FILE"] = _EMPTY
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = _EMPTY
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

try:
    import boto3
    import botocore
    from botocore.config import Config
    from botocore.exceptions import ClientError
except ImportError as e:  # the Go driver reports a missing client
    print(f"run.py: boto3 is not installed: {e}", file=sys.stderr)
    sys.exit(3)

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    HAVE_CRYPTOGRAPHY = True
except ImportError:
    HAVE_CRYPTOGRAPHY = False

CLIENT = "boto3"
VERSION = f"boto3/{boto3.__version__} botocore/{botocore.__version__} Python/{sys.version.split()[0]}"

R1, R2 = "us-east-1", "eu-west-1"
SUBNETS = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
HSM_TYPE = "hsm2m.medium"

_NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=30)
_clients = {}


def client(account, region=R1):
    """A cloudhsmv2 client for the account (a 12-digit access key id) in region."""
    key = (account, region)
    if key not in _clients:
        session = boto3.session.Session(
            aws_access_key_id=account, aws_secret_access_key="cloudhsm-local-secret", region_name=region
        )
        _clients[key] = session.client("cloudhsmv2", endpoint_url=ENDPOINT, config=_NO_RETRY)
    return _clients[key]


def admin(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{ENDPOINT}/_cloudhsm-local/{path}", data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read()


def advance(duration):
    admin("POST", "clock/advance", {"duration": duration})


class Abort(Exception):
    """Ends a scenario that cannot go on."""


class Scenario:
    def __init__(self):
        self.outcome = []
        self.fails = []
        self.note = ""

    def obs(self, s):
        self.outcome.append(s)

    def expect(self, label, got, want):
        got = str(got)
        self.obs(f"{label}={got}")
        if got != str(want):
            self.fails.append(f"{label}: got {got!r}, want {want!r}")

    def same(self, label, a, b):
        self.expect(label, "same" if a == b else f"differs ({a!r} vs {b!r})", "same")

    def error(self, label, want, c, op, **kwargs):
        """The call must raise the client's typed exception for code want."""
        typed = getattr(c.exceptions, want, None)
        if typed is None:
            self.obs(f"{label}=no typed exception class")
            self.fails.append(f"{label}: client has no exception class {want}")
            return
        try:
            getattr(c, op)(**kwargs)
        except typed as e:
            self.obs(f"{label}={e.response['Error']['Code']}")
            status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            want_status = 500 if want == "CloudHsmInternalFailureException" else 400
            if status != want_status:
                self.fails.append(f"{label}: HTTP status {status}, want {want_status}")
        except ClientError as e:
            code = e.response["Error"]["Code"]
            self.obs(f"{label}={code}")
            self.fails.append(f"{label}: got {code} ({e}), want typed {want}")
        else:
            self.obs(f"{label}=no error")
            self.fails.append(f"{label}: {op} succeeded, want {want}")


ANY_FAIL = False


def emit(name, ok, outcome, detail, skipped=False, note=""):
    line = {"client": CLIENT, "version": VERSION, "scenario": name, "ok": ok, "outcome": outcome, "detail": detail}
    if skipped:
        line["skipped"] = True
    if note:
        line["note"] = note
    print(json.dumps(line), flush=True)


def run(name, fn):
    global ANY_FAIL
    s = Scenario()
    start = time.monotonic()
    try:
        fn(s)
    except Abort as e:
        s.fails.append(str(e))
    except ClientError as e:
        s.fails.append(f"unexpected error: {e}")
    except Exception as e:  # a bug in the suite or the client
        s.fails.append(f"{type(e).__name__}: {e}")
    if s.fails:
        ANY_FAIL = True
        emit(name, False, s.outcome, "; ".join(s.fails), note=s.note)
    else:
        emit(name, True, s.outcome, f"passed in {time.monotonic() - start:.0f}s", note=s.note)


def skip(name, why):
    emit(name, True, ["skipped"], why, skipped=True)


# ---- the organisation's CA ----


class CA:
    """A self-signed RSA-2048 root that signs cluster CSRs."""

    def __init__(self):
        self.dir = os.path.join(_WORK, "ca")
        os.makedirs(self.dir, exist_ok=True)
        if HAVE_CRYPTOGRAPHY:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            name = x509.Name(
                [
                    x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Org"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "Example Org Root CA"),
                ]
            )
            now = datetime.datetime.now(datetime.timezone.utc)
            self.cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(self.key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=3652))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=False,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .sign(self.key, hashes.SHA256())
            )
            self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()
        else:
            key, crt = os.path.join(self.dir, "customerCA.key"), os.path.join(self.dir, "customerCA.crt")
            subprocess.run(["openssl", "genrsa", "-out", key, "2048"], check=True, capture_output=True)
            subprocess.run(
                ["openssl", "req", "-new", "-x509", "-days", "3652", "-key", key, "-out", crt,
                 "-subj", "/C=US/O=Example Org/CN=Example Org Root CA"],
                check=True, capture_output=True,
            )
            self.pem = open(crt).read()

    def sign(self, csr_pem):
        if HAVE_CRYPTOGRAPHY:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
            if not csr.is_signature_valid:
                raise Abort("the cluster CSR's signature does not verify")
            now = datetime.datetime.now(datetime.timezone.utc)
            cert = (
                x509.CertificateBuilder()
                .subject_name(csr.subject)
                .issuer_name(self.cert.subject)
                .public_key(csr.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=3652))
                .sign(self.key, hashes.SHA256())
            )
            return cert.public_bytes(serialization.Encoding.PEM).decode()
        csr_file, out = os.path.join(self.dir, "cluster.csr"), os.path.join(self.dir, "cluster.crt")
        with open(csr_file, "w") as f:
            f.write(csr_pem)
        subprocess.run(
            ["openssl", "x509", "-req", "-days", "3652", "-in", csr_file,
             "-CA", os.path.join(self.dir, "customerCA.crt"), "-CAkey", os.path.join(self.dir, "customerCA.key"),
             "-CAcreateserial", "-out", out],
            check=True, capture_output=True,
        )
        return open(out).read()


_ca = None


def ca():
    global _ca
    if _ca is None:
        _ca = CA()
    return _ca


def describe(c, cid):
    out = c.describe_clusters(Filters={"clusterIds": [cid]})["Clusters"]
    if len(out) != 1:
        raise Abort(f"DescribeClusters({cid}) returned {len(out)} clusters")
    return out[0]


def create_cluster(c, **kw):
    return c.create_cluster(HsmType=HSM_TYPE, SubnetIds=SUBNETS, **kw)["Cluster"]


def active_cluster(c):
    """A cluster with one HSM, initialized and activated."""
    cid = create_cluster(c)["ClusterId"]
    advance("1s")
    az = sorted(describe(c, cid)["SubnetMapping"])[0]
    c.create_hsm(ClusterId=cid, AvailabilityZone=az)
    advance("1s")
    csr = describe(c, cid)["Certificates"]["ClusterCsr"]
    c.initialize_cluster(ClusterId=cid, SignedCert=ca().sign(csr), TrustAnchor=ca().pem)
    advance("1s")
    advance("1s")
    advance("1s")
    if describe(c, cid)["State"] != "ACTIVE":
        raise Abort(f"cluster {cid} did not become ACTIVE")
    return cid


# ---- scenario 1: the whole lifecycle ----

ACCT, PEER = "123456789012", "111122223333"


def lifecycle(s):
    c, r = client(ACCT, R1), R1
    cl = create_cluster(c)
    cid = cl["ClusterId"]
    s.expect("create.state", cl["State"], "CREATE_IN_PROGRESS")
    s.expect("create.azs", len(cl["SubnetMapping"]), 2)

    advance("1s")
    cl = describe(c, cid)
    s.expect("uninitialized.state", cl["State"], "UNINITIALIZED")
    s.expect("uninitialized.hsms", len(cl["Hsms"]), 0)
    s.expect("uninitialized.csr_absent", "ClusterCsr" not in cl.get("Certificates", {}), True)

    az, az2 = sorted(cl["SubnetMapping"])
    h = c.create_hsm(ClusterId=cid, AvailabilityZone=az)["Hsm"]
    hsm1 = h["HsmId"]
    s.expect("hsm1.create.state", h["State"], "CREATE_IN_PROGRESS")

    advance("1s")
    cl = describe(c, cid)
    s.expect("hsm1.cluster.state", cl["State"], "UNINITIALIZED")
    s.expect("hsm1.state", cl["Hsms"][0]["State"], "ACTIVE")
    s.expect("hsm1.subnet_matches_az", cl["Hsms"][0]["SubnetId"] == cl["SubnetMapping"][az], True)

    csr = cl["Certificates"]["ClusterCsr"]
    s.expect("csr.pem", csr.splitlines()[0], "-----BEGIN CERTIFICATE REQUEST-----")
    out = c.initialize_cluster(ClusterId=cid, SignedCert=ca().sign(csr), TrustAnchor=ca().pem)
    s.expect("initialize.state", out["State"], "INITIALIZE_IN_PROGRESS")
    s.expect("initialize.message", out["StateMessage"],
             "Cluster is initializing. State will change to INITIALIZED upon completion.")

    advance("600ms")
    s.expect("initialized.state", describe(c, cid)["State"], "INITIALIZED")
    advance("1s")
    s.expect("activated.state", describe(c, cid)["State"], "ACTIVE")

    h = c.create_hsm(ClusterId=cid, AvailabilityZone=az2)["Hsm"]
    hsm2 = h["HsmId"]
    s.expect("hsm2.create.state", h["State"], "CREATE_IN_PROGRESS")
    advance("1s")
    advance("1s")
    s.expect("hsms.states", ",".join(x["State"] for x in describe(c, cid)["Hsms"]), "ACTIVE,ACTIVE")

    backups = c.describe_backups(Filters={"clusterIds": [cid]}, SortAscending=True)["Backups"]
    s.expect("backups.count", len(backups), 2)
    s.expect("backups.states", ",".join(b["BackupState"] for b in backups), "READY,READY")
    bid, barn = backups[0]["BackupId"], backups[0]["BackupArn"]
    s.expect("backup.arn", "well-formed" if barn == f"arn:aws:cloudhsm:{r}:{ACCT}:backup/{bid}" else barn, "well-formed")

    dest = c.copy_backup_to_region(DestinationRegion=R2, BackupId=bid)["DestinationBackup"]
    s.same("copy.source_backup", dest["SourceBackup"], bid)
    s.expect("copy.source_region", dest["SourceRegion"], r)
    s.same("copy.source_cluster", dest["SourceCluster"], cid)
    c2 = client(ACCT, R2)
    copies = c2.describe_backups(Filters={"sourceBackupIds": [bid]})["Backups"]
    s.expect("copy.found", len(copies), 1)
    if not copies:
        raise Abort("no copy found in the destination region")
    s.expect("copy.state", copies[0]["BackupState"], "CREATE_IN_PROGRESS")
    s.expect("copy.dest_source_region", copies[0].get("SourceRegion"), r)
    advance("1s")
    copies = c2.describe_backups(Filters={"sourceBackupIds": [bid]})["Backups"]
    s.expect("copy.ready", copies[0]["BackupState"], "READY")
    s.expect("copy.not_in_source_region", len(c.describe_backups(Filters={"sourceBackupIds": [bid]})["Backups"]), 0)

    rc = create_cluster(c, SourceBackupId=bid)
    rid = rc["ClusterId"]
    s.expect("restore.state", rc["State"], "CREATE_IN_PROGRESS")
    s.same("restore.source_backup", rc.get("SourceBackupId"), bid)
    s.expect("restore.cluster_certificate", "ClusterCertificate" in rc.get("Certificates", {}), True)
    advance("1s")
    rc = describe(c, rid)
    s.expect("restore.active", rc["State"], "ACTIVE")
    s.expect("restore.hsms", len(rc["Hsms"]), 0)

    c.tag_resource(ResourceId=cid, TagList=[{"Key": "team", "Value": "platform"}, {"Key": "env", "Value": "test"}])
    tags = c.list_tags(ResourceId=cid)["TagList"]
    s.expect("tags", ",".join(f"{t['Key']}={t['Value']}" for t in tags), "env=test,team=platform")
    s.expect("cluster.taglist", len(describe(c, cid).get("TagList", [])), 2)
    c.untag_resource(ResourceId=cid, TagKeyList=["env"])
    tags = c.list_tags(ResourceId=cid)["TagList"]
    s.expect("untagged", ",".join(f"{t['Key']}={t['Value']}" for t in tags), "team=platform")

    out = c.modify_cluster(ClusterId=cid, BackupRetentionPolicy={"Type": "DAYS", "Value": "30"})["Cluster"]
    s.expect("modify_cluster.retention", f"{out['BackupRetentionPolicy']['Type']} {out['BackupRetentionPolicy']['Value']}", "DAYS 30")
    bid2 = backups[1]["BackupId"]
    out = c.modify_backup_attributes(BackupId=bid2, NeverExpires=True)["Backup"]
    s.expect("modify_backup.never_expires", out["NeverExpires"], True)
    out = c.delete_backup(BackupId=bid2)["Backup"]
    s.expect("delete_backup.state", out["BackupState"], "PENDING_DELETION")
    s.expect("delete_backup.delete_timestamp", "DeleteTimestamp" in out, True)
    out = c.restore_backup(BackupId=bid2)["Backup"]
    s.expect("restore_backup.state", out["BackupState"], "READY")
    s.expect("restore_backup.delete_timestamp_cleared", "DeleteTimestamp" not in out, True)

    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": PEER},
                    "Action": ["cloudhsm:DescribeBackups", "cloudhsm:CreateCluster"],
                    "Resource": barn,
                }
            ],
        },
        separators=(",", ":"),
    )
    out = c.put_resource_policy(ResourceArn=barn, Policy=policy)
    s.same("put_policy.arn", out.get("ResourceArn"), barn)
    s.same("put_policy.policy", out.get("Policy"), policy)
    s.same("get_policy", c.get_resource_policy(ResourceArn=barn).get("Policy"), policy)
    peer = client(PEER, R1)
    shared = peer.describe_backups(Shared=True)["Backups"]
    s.expect("shared.count", len(shared), 1)
    s.same("shared.backup", shared[0]["BackupId"] if shared else None, bid)
    s.expect("peer.own_backups", len(peer.describe_backups()["Backups"]), 0)
    pc = create_cluster(peer, SourceBackupId=barn)
    pid = pc["ClusterId"]
    s.expect("peer.restore.state", pc["State"], "CREATE_IN_PROGRESS")
    s.same("delete_policy.previous", c.delete_resource_policy(ResourceArn=barn).get("Policy"), policy)
    s.expect("shared.after_delete", len(peer.describe_backups(Shared=True)["Backups"]), 0)
    s.expect("get_policy.after_delete", c.get_resource_policy(ResourceArn=barn).get("Policy", "none"), "none")

    advance("1s")
    s.same("delete_hsm1", c.delete_hsm(ClusterId=cid, HsmId=hsm1)["HsmId"], hsm1)
    s.same("delete_hsm2", c.delete_hsm(ClusterId=cid, HsmId=hsm2)["HsmId"], hsm2)
    s.expect("hsms.deleting", ",".join(x["State"] for x in describe(c, cid)["Hsms"]), "DELETE_IN_PROGRESS,DELETE_IN_PROGRESS")
    s.error("delete_cluster.with_hsms", "CloudHsmInvalidRequestException", c, "delete_cluster", ClusterId=cid)
    advance("1s")
    s.expect("hsms.gone", len(describe(c, cid)["Hsms"]), 0)
    for x in (cid, rid):
        out = c.delete_cluster(ClusterId=x)["Cluster"]
        s.expect("delete_cluster.state", out["State"], "DELETE_IN_PROGRESS")
        s.expect("delete_cluster.message", out.get("StateMessage"), "The cluster is being deleted.")
    peer.delete_cluster(ClusterId=pid)
    advance("1s")
    states = c.describe_clusters(Filters={"clusterIds": [cid, rid]})["Clusters"]
    s.expect("deleted.states", ",".join(x["State"] for x in states), "DELETED,DELETED")
    s.expect("peer.deleted", describe(peer, pid)["State"], "DELETED")


# ---- scenario 2: paginators ----

PAGE_ACCT = "222233334444"
_paged_clusters = []


def page_sizes(c, op, key, id_field, **kw):
    sizes, ids = [], []
    for page in c.get_paginator(op).paginate(PaginationConfig={"PageSize": 3}, **kw):
        sizes.append(str(len(page[key])))
        ids.extend(x[id_field] for x in page[key])
    return ",".join(sizes), ids


def paginate_clusters(s):
    c = client(PAGE_ACCT)
    created = [create_cluster(c)["ClusterId"] for _ in range(7)]
    _paged_clusters.extend(created)
    sizes, ids = page_sizes(c, "describe_clusters", "Clusters", "ClusterId")
    s.expect("pages", sizes, "3,3,1")
    s.expect("distinct", len(set(ids)), 7)
    s.expect("same_set", "yes" if sorted(ids) == sorted(created) else "no", "yes")
    full = c.get_paginator("describe_clusters").paginate(PaginationConfig={"PageSize": 3}).build_full_result()
    s.expect("auto_pagination.total", len(full["Clusters"]), 7)


def paginate_backups(s):
    c = client("333344445555")
    cid = active_cluster(c)
    advance("144h30m")
    sizes, ids = page_sizes(c, "describe_backups", "Backups", "BackupId", Filters={"clusterIds": [cid]})
    s.expect("pages", sizes, "3,3,1")
    s.expect("distinct", len(set(ids)), 7)
    p = c.get_paginator("describe_backups")
    ts = [b["CreateTimestamp"] for b in p.paginate(Filters={"clusterIds": [cid]}, PaginationConfig={"PageSize": 3}).build_full_result()["Backups"]]
    s.expect("order.newest_first", "yes" if ts == sorted(ts, reverse=True) else "no", "yes")
    ts = [b["CreateTimestamp"] for b in p.paginate(Filters={"clusterIds": [cid]}, SortAscending=True, PaginationConfig={"PageSize": 3}).build_full_result()["Backups"]]
    s.expect("order.sort_ascending", "yes" if ts == sorted(ts) else "no", "yes")
    s.expect("auto_pagination.total", len(ts), 7)


def paginate_tags(s):
    c = client(PAGE_ACCT)
    cid = _paged_clusters[0] if _paged_clusters else create_cluster(c)["ClusterId"]
    c.tag_resource(ResourceId=cid, TagList=[{"Key": f"key{i:02d}", "Value": f"value{i:02d}"} for i in range(1, 11)])
    sizes, keys = page_sizes(c, "list_tags", "TagList", "Key", ResourceId=cid)
    s.expect("pages", sizes, "3,3,3,1")
    s.expect("keys", ",".join(keys), ",".join(f"key{i:02d}" for i in range(1, 11)))
    full = c.get_paginator("list_tags").paginate(ResourceId=cid, PaginationConfig={"PageSize": 3}).build_full_result()
    s.expect("auto_pagination.total", len(full["TagList"]), 10)


# ---- scenario 3: every error code that can be provoked ----

ERR_ACCT = "444455556666"
_err_cluster = []


def err_cluster():
    if not _err_cluster:
        _err_cluster.append(create_cluster(client(ERR_ACCT))["ClusterId"])
    return _err_cluster[0]


def err_invalid_request(s):
    c = client(ERR_ACCT)
    s.error("describe_clusters.max_results_26", "CloudHsmInvalidRequestException", c, "describe_clusters", MaxResults=26)
    s.error("create_cluster.hsm_type", "CloudHsmInvalidRequestException", c, "create_cluster", HsmType="hsm9.bogus", SubnetIds=SUBNETS)


def err_not_found(s):
    c = client(ERR_ACCT)
    s.error("delete_cluster.unknown", "CloudHsmResourceNotFoundException", c, "delete_cluster", ClusterId="cluster-aaaaaaaaaaa")
    s.error("list_tags.unknown_backup", "CloudHsmResourceNotFoundException", c, "list_tags", ResourceId="backup-aaaaaaaaaaa")


def err_limit(s):
    c, cid = client(ERR_ACCT), err_cluster()
    c.tag_resource(ResourceId=cid, TagList=[{"Key": f"k{i:02d}", "Value": "v"} for i in range(1, 51)])
    s.error("tag_resource.tag_51", "CloudHsmResourceLimitExceededException", c, "tag_resource",
            ResourceId=cid, TagList=[{"Key": "k51", "Value": "v"}])
    s.expect("tags_after", len(c.list_tags(ResourceId=cid)["TagList"]), 50)


def err_tag(s):
    c, cid = client(ERR_ACCT), err_cluster()
    s.error("tag_resource.aws_prefix", "CloudHsmTagException", c, "tag_resource",
            ResourceId=cid, TagList=[{"Key": "aws:x", "Value": "v"}])


def err_access_denied(s):
    s.error("get_resource_policy.other_account", "CloudHsmAccessDeniedException", client(ERR_ACCT), "get_resource_policy",
            ResourceArn="arn:aws:cloudhsm:us-east-1:999988887777:backup/backup-aaaaaaaaaaa")


def faults_available():
    try:
        admin("GET", "faults")
        return True
    except OSError:
        return False


def err_injected(code):
    """CloudHsmServiceException and CloudHsmInternalFailureException cannot be
    provoked by a request: the admin API's fault injection makes the next
    DescribeClusters of the account fail with the code (retries are off)."""

    def scenario(s):
        admin("POST", "faults", {"operation": "DescribeClusters", "account": ERR_ACCT, "error": code, "count": 1})
        c = client(ERR_ACCT)
        s.error("describe_clusters.injected", code, c, "describe_clusters")
        c.describe_clusters()
        s.obs("next_call=ok")

    return scenario


# ---- scenario 4: isolation ----

ISO_A, ISO_B = "111111111111", "222222222222"
_iso = {}


def iso_setup():
    if not _iso:
        _iso["ca"] = create_cluster(client(ISO_A, R1), TagList=[{"Key": "owner", "Value": "a"}])["ClusterId"]
        _iso["ca2"] = create_cluster(client(ISO_A, R2))["ClusterId"]
        _iso["cb"] = create_cluster(client(ISO_B, R1))["ClusterId"]
    return _iso


def ids(c):
    return [x["ClusterId"] for x in c.describe_clusters()["Clusters"]]


def iso_account(s):
    iso = iso_setup()
    a, b = client(ISO_A, R1), client(ISO_B, R1)
    s.expect("a.sees_only_own", "yes" if ids(a) == [iso["ca"]] else ids(a), "yes")
    s.expect("b.sees_only_own", "yes" if ids(b) == [iso["cb"]] else ids(b), "yes")
    s.expect("b.filter_on_a_cluster", len(b.describe_clusters(Filters={"clusterIds": [iso["ca"]]})["Clusters"]), 0)
    s.error("b.list_tags_a", "CloudHsmResourceNotFoundException", b, "list_tags", ResourceId=iso["ca"])
    s.error("b.delete_a", "CloudHsmResourceNotFoundException", b, "delete_cluster", ClusterId=iso["ca"])
    s.error("b.tag_a", "CloudHsmResourceNotFoundException", b, "tag_resource", ResourceId=iso["ca"], TagList=[{"Key": "x", "Value": "y"}])
    va = a.describe_clusters()["Clusters"][0]["VpcId"]
    vb = b.describe_clusters()["Clusters"][0]["VpcId"]
    s.expect("subnets_learned_per_account", "yes" if va != vb else "no", "yes")
    s.expect("a.tags_intact", a.list_tags(ResourceId=iso["ca"])["TagList"][0]["Value"], "a")


def iso_region(s):
    iso = iso_setup()
    a2, b2 = client(ISO_A, R2), client(ISO_B, R2)
    s.expect("r2.sees_only_own", "yes" if ids(a2) == [iso["ca2"]] else ids(a2), "yes")
    s.expect("b.r2.empty", len(b2.describe_clusters()["Clusters"]), 0)
    s.error("r2.list_tags_r1_cluster", "CloudHsmResourceNotFoundException", a2, "list_tags", ResourceId=iso["ca"])
    s.error("r2.create_hsm_r1_cluster", "CloudHsmResourceNotFoundException", a2, "create_hsm",
            ClusterId=iso["ca"], AvailabilityZone="eu-west-1a")
    az = list(a2.describe_clusters()["Clusters"][0]["SubnetMapping"])[0]
    s.expect("r2.az_region", az[:-1], "eu-west-1")


# ---- scenario 5: ENI addresses are unique in a subnet ----


def net_ip_unique(s):
    c = client("555566667777")
    c1, c2 = create_cluster(c)["ClusterId"], create_cluster(c)["ClusterId"]
    advance("1s")
    az = sorted(describe(c, c1)["SubnetMapping"])[0]
    c.create_hsm(ClusterId=c1, AvailabilityZone=az)
    c.create_hsm(ClusterId=c2, AvailabilityZone=az)
    advance("1s")
    (s1, ip1), (s2, ip2) = [
        (x["Hsms"][0]["SubnetId"], x["Hsms"][0].get("EniIp"))
        for x in c.describe_clusters(Filters={"clusterIds": [c1, c2]})["Clusters"]
    ]
    s.expect("same_subnet", "yes" if s1 and s1 == s2 else "no", "yes")
    s.expect("distinct_eni_ips", "yes" if ip1 != ip2 else f"no (both {ip1})", "yes")


def main():
    try:
        admin("POST", "clock/freeze")
    except OSError as e:
        print(f"run.py: admin API unreachable at {ENDPOINT}: {e}", file=sys.stderr)
        return 4
    # The frozen clock falls behind the wall clock while the suite runs, and
    # the server checks SignedCert's validity against its own clock.
    advance("1h")
    run("lifecycle", lifecycle)
    run("paginate.describe-clusters", paginate_clusters)
    run("paginate.describe-backups", paginate_backups)
    run("paginate.list-tags", paginate_tags)
    run("error.CloudHsmInvalidRequestException", err_invalid_request)
    run("error.CloudHsmResourceNotFoundException", err_not_found)
    run("error.CloudHsmResourceLimitExceededException", err_limit)
    run("error.CloudHsmTagException", err_tag)
    run("error.CloudHsmAccessDeniedException", err_access_denied)
    for code in ("CloudHsmServiceException", "CloudHsmInternalFailureException"):
        if faults_available():
            run(f"error.{code}", err_injected(code))
        else:
            skip(f"error.{code}", "cannot be provoked without fault injection, and this server has no admin faults endpoint")
    run("isolation.account", iso_account)
    run("isolation.region", iso_region)
    run("network.eni-ip-unique-in-subnet", net_ip_unique)
    return 1 if ANY_FAIL else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        shutil.rmtree(_WORK, ignore_errors=True)
