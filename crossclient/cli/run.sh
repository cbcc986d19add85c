#!/usr/bin/env bash
# Cross-client suite of cloudhsm-local through the AWS CLI (v1 or v2).
#
# Runs every scenario of crossclient/SCENARIOS.md against the server at
# $CLOUDHSM_ENDPOINT and prints one JSON line per scenario:
#   {"client":..., "version":..., "scenario":..., "ok":true|false,
#    "outcome":[...], "detail":...}
# Exits non-zero if any scenario failed.
#
# CLI_ENDPOINT_MODE selects how the CLI finds the server:
#   flag (default)  every call gets --endpoint-url
#   env             only AWS_ENDPOINT_URL_CLOUDHSM_V2 is set
# CLI_SCENARIOS (optional) runs only the scenarios matching its
# space-separated glob patterns, e.g. "lifecycle error.* isolation.*"; the
# others are reported as skipped.
#
# Needs: aws, openssl, curl. The server must be fresh (a new --in-memory one):
# the scenarios count what they create.
set -uo pipefail

ENDPOINT="${CLOUDHSM_ENDPOINT:-http://127.0.0.1:4599}"
ENDPOINT="${ENDPOINT%/}"
MODE="${CLI_ENDPOINT_MODE:-flag}"
case "$MODE" in
flag) CLIENT="aws-cli (--endpoint-url)" ;;
env) CLIENT="aws-cli (AWS_ENDPOINT_URL_CLOUDHSM_V2)" ;;
*)
  echo "CLI_ENDPOINT_MODE must be flag or env, got $MODE" >&2
  exit 2
  ;;
esac

for tool in aws openssl curl; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "run.sh: $tool not found" >&2
    exit 3
  }
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# Nothing from the machine leaks in: no config, no credentials file, no
# profile, no other endpoint, no retries that would hide an error.
: >"$WORK/empty"
export AWS_CONFIG_FILE="$WORK/empty" AWS_SHARED_CREDENTIALS_FILE="$WORK/empty"
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_CA_BUNDLE \
  AWS_ENDPOINT_URL AWS_ENDPOINT_URL_CLOUDHSM_V2 AWS_IGNORE_CONFIGURED_ENDPOINT_URLS AWS_REGION
export AWS_MAX_ATTEMPTS=1 AWS_RETRY_MODE=standard AWS_EC2_METADATA_DISABLED=true AWS_PAGER=""
export AWS_SECRET_ACCESS_KEY=cloudhsm-local-secret
if [ "$MODE" = env ]; then
  export AWS_ENDPOINT_URL_CLOUDHSM_V2="$ENDPOINT"
fi

VERSION="$(aws --version 2>&1 | head -n1)"

# ---- helpers ----

# cli ACCOUNT REGION subcommand args...: one call of `aws cloudhsmv2`, as the
# given account (a 12-digit access key id is the account) in the region.
# stdout is the JSON (or --output text) answer; stderr goes to $WORK/err.
cli() {
  local acct="$1" region="$2"
  shift 2
  local ep=()
  [ "$MODE" = flag ] && ep=(--endpoint-url "$ENDPOINT")
  AWS_ACCESS_KEY_ID="$acct" AWS_DEFAULT_REGION="$region" \
    aws cloudhsmv2 "$@" "${ep[@]}" 2>"$WORK/err"
}

# admin METHOD PATH [JSON body]: the admin API of cloudhsm-local.
admin() {
  local method="$1" path="$2" body="${3:-}"
  if [ -n "$body" ]; then
    curl -fsS -X "$method" -H 'Content-Type: application/json' --data "$body" "$ENDPOINT/_cloudhsm-local/$path"
  else
    curl -fsS -X "$method" "$ENDPOINT/_cloudhsm-local/$path"
  fi
}
advance() { admin POST clock/advance "{\"duration\":\"$1\"}" >/dev/null; }

json_str() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\n'/\\n}"
  s="${s//$'\r'/\\r}"
  s="${s//$'\t'/\\t}"
  printf '"%s"' "$s"
}

# Per-scenario state: OUTCOME (observations every client must share), FAILS.
OUTCOME=()
FAILS=()
NOTE=""
ANY_FAIL=0

obs() { OUTCOME+=("$1"); }
fail() { FAILS+=("$1"); }

# expect LABEL GOT WANT: records LABEL=GOT as an observation; a mismatch fails.
expect() {
  obs "$1=$2"
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

# must DESCRIPTION: after a failed call, records it (with the CLI's stderr).
must() { fail "$1 failed: $(tr '\n' ' ' <"$WORK/err")"; }

emit() {
  local scenario="$1" ok="$2" detail="$3" skipped="${4:-}"
  local out="" o
  for o in "${OUTCOME[@]+"${OUTCOME[@]}"}"; do
    out+="${out:+,}$(json_str "$o")"
  done
  local extra=""
  [ -n "$skipped" ] && extra+=",\"skipped\":true"
  [ -n "$NOTE" ] && extra+=",\"note\":$(json_str "$NOTE")"
  printf '{"client":%s,"version":%s,"scenario":%s,"ok":%s,"outcome":[%s],"detail":%s%s}\n' \
    "$(json_str "$CLIENT")" "$(json_str "$VERSION")" "$(json_str "$scenario")" "$ok" "$out" "$(json_str "$detail")" "$extra"
}

# selected NAME: whether CLI_SCENARIOS (space-separated glob patterns; empty
# means all) selects the scenario.
selected() {
  [ -z "${CLI_SCENARIOS:-}" ] && return 0
  local p
  for p in $CLI_SCENARIOS; do
    # shellcheck disable=SC2053
    [[ "$1" == $p ]] && return 0
  done
  return 1
}

# scenario NAME FUNCTION: runs FUNCTION and prints its result line.
scenario() {
  local name="$1" fn="$2"
  if ! selected "$name"; then
    skip "$name" "not selected in this pass (CLI_SCENARIOS=$CLI_SCENARIOS)"
    return
  fi
  OUTCOME=()
  FAILS=()
  NOTE=""
  local start=$SECONDS
  "$fn"
  local rc=$?
  if [ "$rc" -ne 0 ] && [ "${#FAILS[@]}" -eq 0 ]; then
    fail "scenario aborted (rc=$rc)"
  fi
  if [ "${#FAILS[@]}" -eq 0 ]; then
    emit "$name" true "passed in $((SECONDS - start))s"
  else
    ANY_FAIL=1
    local d
    d="$(printf '%s; ' "${FAILS[@]}")"
    emit "$name" false "${d%; }"
  fi
}

skip() { OUTCOME=("skipped"); NOTE=""; emit "$1" true "$2" skipped; }

# error_code: the AWS error code in the last call's stderr.
error_code() { sed -n 's/.*An error occurred (\([A-Za-z]*\)).*/\1/p' "$WORK/err" | head -n1; }

# expect_error LABEL WANTCODE aws-args...: the call must fail with WANTCODE
# and the CLI's exit code for a service error (254 in v2, 255 in v1).
expect_error() {
  local label="$1" want="$2" acct="$3" region="$4"
  shift 4
  cli "$acct" "$region" "$@" >/dev/null
  local rc=$? code
  code="$(error_code)"
  obs "$label=$code"
  case "$rc" in
  254 | 255) ;;
  *) fail "$label: exit code $rc, want 254 or 255" ;;
  esac
  [ "$code" = "$want" ] || fail "$label: got error '$code' (rc=$rc, stderr: $(tr '\n' ' ' <"$WORK/err")), want $want"
}

SUBNETS=(subnet-0123456789abcdef0 subnet-0123456789abcdef1)

# The organisation's CA, made once: the AWS user guide's openssl commands.
make_ca() {
  [ -f "$WORK/customerCA.crt" ] && return 0
  openssl genrsa -out "$WORK/customerCA.key" 2048 2>/dev/null &&
    openssl req -new -x509 -days 3652 -key "$WORK/customerCA.key" -out "$WORK/customerCA.crt" \
      -subj "/C=US/O=Example Org/CN=Example Org Root CA" 2>/dev/null
}

# sign_csr CLUSTER_ID CSRFILE: writes $WORK/CLUSTER_ID_CustomerHsmCertificate.crt.
sign_csr() {
  openssl x509 -req -days 3652 -in "$2" -CA "$WORK/customerCA.crt" -CAkey "$WORK/customerCA.key" \
    -CAcreateserial -out "$WORK/$1_CustomerHsmCertificate.crt" 2>"$WORK/openssl.err"
}

state_of() { # ACCOUNT REGION CLUSTER_ID -> State
  cli "$1" "$2" describe-clusters --filters "clusterIds=$3" --query 'Clusters[0].State' --output text
}

first_az() { # ACCOUNT REGION CLUSTER_ID -> the first AZ of its SubnetMapping
  cli "$1" "$2" describe-clusters --filters "clusterIds=$3" --query 'sort(keys(Clusters[0].SubnetMapping))[0]' --output text
}

# active_cluster ACCOUNT REGION: creates a cluster, one HSM, initializes and
# activates it; sets CID and AZ.
active_cluster() {
  local a="$1" r="$2"
  CID="$(cli "$a" "$r" create-cluster --hsm-type hsm2m.medium --subnet-ids "${SUBNETS[@]}" --query Cluster.ClusterId --output text)" || {
    must create-cluster
    return 1
  }
  advance 1s
  AZ="$(first_az "$a" "$r" "$CID")" || { must describe-clusters; return 1; }
  cli "$a" "$r" create-hsm --cluster-id "$CID" --availability-zone "$AZ" >/dev/null || { must create-hsm; return 1; }
  advance 1s
  cli "$a" "$r" describe-clusters --filters "clusterIds=$CID" --query 'Clusters[0].Certificates.ClusterCsr' --output text >"$WORK/$CID.csr" || { must describe-clusters; return 1; }
  make_ca && sign_csr "$CID" "$WORK/$CID.csr" || { fail "openssl: $(cat "$WORK/openssl.err")"; return 1; }
  cli "$a" "$r" initialize-cluster --cluster-id "$CID" --signed-cert "file://$WORK/${CID}_CustomerHsmCertificate.crt" \
    --trust-anchor "file://$WORK/customerCA.crt" >/dev/null || { must initialize-cluster; return 1; }
  advance 1s
  advance 1s
  advance 1s
  [ "$(state_of "$a" "$r" "$CID")" = ACTIVE ] || { fail "cluster $CID did not become ACTIVE"; return 1; }
}

# ---- scenario 1: the whole lifecycle ----

ACCT=123456789012
PEER=111122223333
R1=us-east-1
R2=eu-west-1

lifecycle() {
  local a=$ACCT r=$R1 out
  out="$(cli $a $r create-cluster --hsm-type hsm2m.medium --subnet-ids "${SUBNETS[@]}" \
    --query '[Cluster.ClusterId, Cluster.State, length(keys(Cluster.SubnetMapping))]' --output text)" || { must create-cluster; return 1; }
  local cid state n
  read -r cid state n <<<"$out"
  expect create.state "$state" CREATE_IN_PROGRESS
  expect create.azs "$n" 2

  advance 1s
  local az az2
  out="$(cli $a $r describe-clusters --filters "clusterIds=$cid" \
    --query "[Clusters[0].State, length(Clusters[0].Hsms), Clusters[0].Certificates.ClusterCsr == null, join(' ', sort(keys(Clusters[0].SubnetMapping)))]" \
    --output text)" || { must describe-clusters; return 1; }
  read -r state n csr_absent az az2 <<<"$out"
  expect uninitialized.state "$state" UNINITIALIZED
  expect uninitialized.hsms "$n" 0
  expect uninitialized.csr_absent "$csr_absent" True

  out="$(cli $a $r create-hsm --cluster-id "$cid" --availability-zone "$az" --query '[Hsm.HsmId, Hsm.State]' --output text)" || { must create-hsm; return 1; }
  local hsm1
  read -r hsm1 state <<<"$out"
  expect hsm1.create.state "$state" CREATE_IN_PROGRESS

  advance 1s
  out="$(cli $a $r describe-clusters --filters "clusterIds=$cid" \
    --query "[Clusters[0].State, Clusters[0].Hsms[0].State, Clusters[0].Hsms[0].SubnetId == Clusters[0].SubnetMapping.\"$az\"]" --output text)" || { must describe-clusters; return 1; }
  local hstate subnet_ok
  read -r state hstate subnet_ok <<<"$out"
  expect hsm1.cluster.state "$state" UNINITIALIZED
  expect hsm1.state "$hstate" ACTIVE
  expect hsm1.subnet_matches_az "$subnet_ok" True

  # The ceremony: read the CSR, sign it with our CA, initialize.
  cli $a $r describe-clusters --filters "clusterIds=$cid" --query 'Clusters[0].Certificates.ClusterCsr' --output text >"$WORK/$cid.csr" || { must describe-clusters; return 1; }
  expect csr.pem "$(head -n1 "$WORK/$cid.csr")" "-----BEGIN CERTIFICATE REQUEST-----"
  make_ca && sign_csr "$cid" "$WORK/$cid.csr" || { fail "openssl: $(cat "$WORK/openssl.err")"; return 1; }
  out="$(cli $a $r initialize-cluster --cluster-id "$cid" --signed-cert "file://$WORK/${cid}_CustomerHsmCertificate.crt" \
    --trust-anchor "file://$WORK/customerCA.crt" --query '[State, StateMessage]' --output text)" || { must initialize-cluster; return 1; }
  local msg
  IFS=$'\t' read -r state msg <<<"$out"
  expect initialize.state "$state" INITIALIZE_IN_PROGRESS
  expect initialize.message "$msg" "Cluster is initializing. State will change to INITIALIZED upon completion."

  advance 600ms
  expect initialized.state "$(state_of $a $r "$cid")" INITIALIZED
  advance 1s
  expect activated.state "$(state_of $a $r "$cid")" ACTIVE

  # A second HSM, in the other AZ.
  out="$(cli $a $r create-hsm --cluster-id "$cid" --availability-zone "$az2" --query 'Hsm.[HsmId, State]' --output text)" || { must create-hsm; return 1; }
  local hsm2
  read -r hsm2 state <<<"$out"
  expect hsm2.create.state "$state" CREATE_IN_PROGRESS
  advance 1s
  advance 1s
  out="$(cli $a $r describe-clusters --filters "clusterIds=$cid" --query 'join(`,`, Clusters[0].Hsms[].State)' --output text)"
  expect hsms.states "$out" ACTIVE,ACTIVE

  # Backups: one at activation, one for the HSM added to the ACTIVE cluster.
  out="$(cli $a $r describe-backups --filters "clusterIds=$cid" --sort-ascending \
    --query '[length(Backups), join(`,`, Backups[].BackupState), Backups[0].BackupId, Backups[0].BackupArn, Backups[1].BackupId]' --output text)" || { must describe-backups; return 1; }
  local nb states bid barn bid2
  read -r nb states bid barn bid2 <<<"$out"
  expect backups.count "$nb" 2
  expect backups.states "$states" READY,READY
  expect backup.arn "$([ "$barn" = "arn:aws:cloudhsm:$r:$a:backup/$bid" ] && echo well-formed)" well-formed

  # Copy to another region; find the copy there by sourceBackupIds.
  out="$(cli $a $r copy-backup-to-region --destination-region $R2 --backup-id "$bid" \
    --query '[DestinationBackup.SourceBackup, DestinationBackup.SourceRegion, DestinationBackup.SourceCluster]' --output text)" || { must copy-backup-to-region; return 1; }
  local sb sr sc
  read -r sb sr sc <<<"$out"
  expect copy.source_backup "$([ "$sb" = "$bid" ] && echo same)" same
  expect copy.source_region "$sr" $r
  expect copy.source_cluster "$([ "$sc" = "$cid" ] && echo same)" same
  out="$(cli $a $R2 describe-backups --filters "sourceBackupIds=$bid" \
    --query '[length(Backups), Backups[0].BackupState, Backups[0].SourceRegion]' --output text)" || { must describe-backups; return 1; }
  read -r nb state sr <<<"$out"
  expect copy.found "$nb" 1
  expect copy.state "$state" CREATE_IN_PROGRESS
  expect copy.dest_source_region "$sr" $r
  advance 1s
  out="$(cli $a $R2 describe-backups --filters "sourceBackupIds=$bid" --query 'Backups[0].BackupState' --output text)"
  expect copy.ready "$out" READY
  out="$(cli $a $r describe-backups --filters "sourceBackupIds=$bid" --query 'length(Backups)' --output text)"
  expect copy.not_in_source_region "$out" 0

  # A cluster from the backup: CREATE_IN_PROGRESS, then ACTIVE with no HSM.
  out="$(cli $a $r create-cluster --hsm-type hsm2m.medium --subnet-ids "${SUBNETS[@]}" --source-backup-id "$bid" \
    --query '[Cluster.ClusterId, Cluster.State, Cluster.SourceBackupId, Cluster.Certificates.ClusterCertificate != null]' --output text)" || { must create-cluster; return 1; }
  local rid src hascert
  read -r rid state src hascert <<<"$out"
  expect restore.state "$state" CREATE_IN_PROGRESS
  expect restore.source_backup "$([ "$src" = "$bid" ] && echo same)" same
  expect restore.cluster_certificate "$hascert" True
  advance 1s
  out="$(cli $a $r describe-clusters --filters "clusterIds=$rid" --query '[Clusters[0].State, length(Clusters[0].Hsms)]' --output text)"
  read -r state n <<<"$out"
  expect restore.active "$state" ACTIVE
  expect restore.hsms "$n" 0

  # Tags.
  cli $a $r tag-resource --resource-id "$cid" --tag-list Key=team,Value=platform Key=env,Value=test >/dev/null || { must tag-resource; return 1; }
  out="$(cli $a $r list-tags --resource-id "$cid" --query 'join(`,`, TagList[].join(`=`, [Key, Value]))' --output text)" || { must list-tags; return 1; }
  expect tags "$out" env=test,team=platform
  out="$(cli $a $r describe-clusters --filters "clusterIds=$cid" --query 'length(Clusters[0].TagList)' --output text)"
  expect cluster.taglist "$out" 2
  cli $a $r untag-resource --resource-id "$cid" --tag-key-list env >/dev/null || { must untag-resource; return 1; }
  out="$(cli $a $r list-tags --resource-id "$cid" --query 'join(`,`, TagList[].join(`=`, [Key, Value]))' --output text)"
  expect untagged "$out" team=platform

  # Retention, NeverExpires, DeleteBackup and RestoreBackup.
  out="$(cli $a $r modify-cluster --cluster-id "$cid" --backup-retention-policy Type=DAYS,Value=30 \
    --query 'Cluster.BackupRetentionPolicy.[Type, Value]' --output text)" || { must modify-cluster; return 1; }
  expect modify_cluster.retention "$(tr '\t' ' ' <<<"$out")" "DAYS 30"
  out="$(cli $a $r modify-backup-attributes --backup-id "$bid2" --never-expires --query Backup.NeverExpires --output text)" || { must modify-backup-attributes; return 1; }
  expect modify_backup.never_expires "$out" True
  out="$(cli $a $r delete-backup --backup-id "$bid2" --query '[Backup.BackupState, Backup.DeleteTimestamp != null]' --output text)" || { must delete-backup; return 1; }
  read -r state n <<<"$out"
  expect delete_backup.state "$state" PENDING_DELETION
  expect delete_backup.delete_timestamp "$n" True
  out="$(cli $a $r restore-backup --backup-id "$bid2" --query '[Backup.BackupState, Backup.DeleteTimestamp == null]' --output text)" || { must restore-backup; return 1; }
  read -r state n <<<"$out"
  expect restore_backup.state "$state" READY
  expect restore_backup.delete_timestamp_cleared "$n" True

  # A resource policy shares the backup with account 111122223333.
  local policy
  policy="{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":\"$PEER\"},\"Action\":[\"cloudhsm:DescribeBackups\",\"cloudhsm:CreateCluster\"],\"Resource\":\"$barn\"}]}"
  out="$(cli $a $r put-resource-policy --resource-arn "$barn" --policy "$policy" --query '[ResourceArn, Policy]' --output text)" || { must put-resource-policy; return 1; }
  local rarn rpol
  IFS=$'\t' read -r rarn rpol <<<"$out"
  expect put_policy.arn "$([ "$rarn" = "$barn" ] && echo same)" same
  expect put_policy.policy "$([ "$rpol" = "$policy" ] && echo same)" same
  out="$(cli $a $r get-resource-policy --resource-arn "$barn" --query Policy --output text)" || { must get-resource-policy; return 1; }
  expect get_policy "$([ "$out" = "$policy" ] && echo same)" same
  out="$(cli $PEER $r describe-backups --shared --query '[length(Backups), Backups[0].BackupId]' --output text)" || { must "describe-backups --shared"; return 1; }
  read -r nb sb <<<"$out"
  expect shared.count "$nb" 1
  expect shared.backup "$([ "$sb" = "$bid" ] && echo same)" same
  out="$(cli $PEER $r describe-backups --query 'length(Backups)' --output text)"
  expect peer.own_backups "$out" 0
  out="$(cli $PEER $r create-cluster --hsm-type hsm2m.medium --subnet-ids "${SUBNETS[@]}" --source-backup-id "$barn" \
    --query '[Cluster.ClusterId, Cluster.State]' --output text)" || { must "create-cluster from shared backup"; return 1; }
  local pid
  read -r pid state <<<"$out"
  expect peer.restore.state "$state" CREATE_IN_PROGRESS
  out="$(cli $a $r delete-resource-policy --resource-arn "$barn" --query Policy --output text)" || { must delete-resource-policy; return 1; }
  expect delete_policy.previous "$([ "$out" = "$policy" ] && echo same)" same
  out="$(cli $PEER $r describe-backups --shared --query 'length(Backups)' --output text)"
  expect shared.after_delete "$out" 0
  out="$(cli $a $r get-resource-policy --resource-arn "$barn" --query 'Policy || `none`' --output text)"
  expect get_policy.after_delete "$out" none

  # Delete HSMs, then clusters.
  advance 1s
  out="$(cli $a $r delete-hsm --cluster-id "$cid" --hsm-id "$hsm1" --query HsmId --output text)" || { must delete-hsm; return 1; }
  expect delete_hsm1 "$([ "$out" = "$hsm1" ] && echo same)" same
  out="$(cli $a $r delete-hsm --cluster-id "$cid" --hsm-id "$hsm2" --query HsmId --output text)" || { must delete-hsm; return 1; }
  expect delete_hsm2 "$([ "$out" = "$hsm2" ] && echo same)" same
  out="$(cli $a $r describe-clusters --filters "clusterIds=$cid" --query 'join(`,`, Clusters[0].Hsms[].State)' --output text)"
  expect hsms.deleting "$out" DELETE_IN_PROGRESS,DELETE_IN_PROGRESS
  expect_error delete_cluster.with_hsms CloudHsmInvalidRequestException $a $r delete-cluster --cluster-id "$cid"
  advance 1s
  out="$(cli $a $r describe-clusters --filters "clusterIds=$cid" --query 'length(Clusters[0].Hsms)' --output text)"
  expect hsms.gone "$out" 0
  local c
  for c in "$cid" "$rid"; do
    out="$(cli $a $r delete-cluster --cluster-id "$c" --query '[Cluster.State, Cluster.StateMessage]' --output text)" || { must delete-cluster; return 1; }
    IFS=$'\t' read -r state msg <<<"$out"
    expect delete_cluster.state "$state" DELETE_IN_PROGRESS
    expect delete_cluster.message "$msg" "The cluster is being deleted."
  done
  cli $PEER $r delete-cluster --cluster-id "$pid" >/dev/null || { must "delete-cluster (peer)"; return 1; }
  advance 1s
  out="$(cli $a $r describe-clusters --filters "clusterIds=$cid,$rid" --query 'join(`,`, Clusters[].State)' --output text)"
  expect deleted.states "$out" DELETED,DELETED
  out="$(cli $PEER $r describe-clusters --filters "clusterIds=$pid" --query 'Clusters[0].State' --output text)"
  expect peer.deleted "$out" DELETED
}

# ---- scenario 2: paginators ----

# pages ACCOUNT REGION JMESPATH-LIST-KEY subcommand args...: follows the CLI's
# own paginator with --page-size 3 --max-items 3 and --starting-token; prints
# the page sizes joined by commas and leaves the items' ids in $WORK/items.
pages() {
  local a="$1" r="$2" key="$3"
  shift 3
  local token="" sizes="" out n t
  : >"$WORK/items"
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local st=()
    [ -n "$token" ] && st=(--starting-token "$token")
    # With --output text the CLI applies --query to each page separately;
    # --output json applies it to the merged result, NextToken included.
    out="$(cli "$a" "$r" "$@" --page-size 3 --max-items 3 "${st[@]}" --output json \
      --query "join('|', [to_string(length($key)), NextToken || 'None', join(' ', $key[].$ID_FIELD)])")" || return 1
    out="${out#\"}"
    out="${out%\"}"
    IFS='|' read -r n t ids <<<"$out"
    sizes+="${sizes:+,}$n"
    tr ' ' '\n' <<<"$ids" >>"$WORK/items"
    [ "$t" = None ] && break
    token="$t"
  done
  echo "$sizes"
}

PAGE_ACCT=222233334444

paginate_clusters() {
  local a=$PAGE_ACCT r=$R1 i out
  : >"$WORK/created"
  for i in 1 2 3 4 5 6 7; do
    cli $a $r create-cluster --hsm-type hsm2m.medium --subnet-ids "${SUBNETS[@]}" --query Cluster.ClusterId --output text >>"$WORK/created" || { must create-cluster; return 1; }
  done
  ID_FIELD=ClusterId
  out="$(pages $a $r Clusters describe-clusters)" || { must describe-clusters; return 1; }
  expect pages "$out" 3,3,1
  expect distinct "$(sort -u "$WORK/items" | grep -c .)" 7
  expect same_set "$([ "$(sort "$WORK/items")" = "$(sort "$WORK/created")" ] && echo yes)" yes
  # The CLI's automatic pagination (no --max-items) returns everything.
  out="$(cli $a $r describe-clusters --page-size 3 --query 'length(Clusters)' --output json)" || { must describe-clusters; return 1; }
  expect auto_pagination.total "$out" 7
}

paginate_backups() {
  local a=333344445555 r=$R1 out
  active_cluster $a $r || return 1
  # One backup at activation, then one every 24 hours: 6 more in 6 days.
  advance 144h30m
  ID_FIELD=BackupId
  out="$(pages $a $r Backups describe-backups --filters "clusterIds=$CID")" || { must describe-backups; return 1; }
  expect pages "$out" 3,3,1
  expect distinct "$(sort -u "$WORK/items" | grep -c .)" 7
  out="$(cli $a $r describe-backups --filters "clusterIds=$CID" --page-size 3 --query 'Backups[].CreateTimestamp' --output json | tr -d ' \n[]')"
  local desc asc
  desc="$(tr ',' '\n' <<<"$out" | sort -g -r | paste -sd, -)"
  expect order.newest_first "$([ "$out" = "$desc" ] && echo yes)" yes
  out="$(cli $a $r describe-backups --filters "clusterIds=$CID" --sort-ascending --page-size 3 --query 'Backups[].CreateTimestamp' --output json | tr -d ' \n[]')"
  asc="$(tr ',' '\n' <<<"$out" | sort -g | paste -sd, -)"
  expect order.sort_ascending "$([ "$out" = "$asc" ] && echo yes)" yes
  expect auto_pagination.total "$(tr ',' '\n' <<<"$out" | grep -c .)" 7
}

paginate_tags() {
  local a=$PAGE_ACCT r=$R1 cid out i tags=()
  cid="$(head -n1 "$WORK/created" 2>/dev/null)"
  if [ -z "$cid" ]; then
    cid="$(cli $a $r create-cluster --hsm-type hsm2m.medium --subnet-ids "${SUBNETS[@]}" --query Cluster.ClusterId --output text)" || { must create-cluster; return 1; }
  fi
  for i in 01 02 03 04 05 06 07 08 09 10; do tags+=("Key=key$i,Value=value$i"); done
  cli $a $r tag-resource --resource-id "$cid" --tag-list "${tags[@]}" >/dev/null || { must tag-resource; return 1; }
  ID_FIELD=Key
  out="$(pages $a $r TagList list-tags --resource-id "$cid")" || { must list-tags; return 1; }
  expect pages "$out" 3,3,3,1
  expect keys "$(paste -sd, "$WORK/items")" key01,key02,key03,key04,key05,key06,key07,key08,key09,key10
  out="$(cli $a $r list-tags --resource-id "$cid" --page-size 3 --query 'length(TagList)' --output json)"
  expect auto_pagination.total "$out" 10
}

# ---- scenario 3: every error code that can be provoked ----

ERR_ACCT=444455556666
ERR_CLUSTER=""

err_cluster() {
  [ -n "$ERR_CLUSTER" ] && return 0
  ERR_CLUSTER="$(cli $ERR_ACCT $R1 create-cluster --hsm-type hsm2m.medium --subnet-ids "${SUBNETS[@]}" --query Cluster.ClusterId --output text)" || {
    must create-cluster
    return 1
  }
}

err_invalid_request() {
  # Model validation (MaxResults above 25) and a domain rule (an unsupported HsmType).
  expect_error describe_clusters.max_results_26 CloudHsmInvalidRequestException $ERR_ACCT $R1 describe-clusters --max-results 26
  expect_error create_cluster.hsm_type CloudHsmInvalidRequestException $ERR_ACCT $R1 create-cluster --hsm-type hsm9.bogus --subnet-ids "${SUBNETS[@]}"
}

err_not_found() {
  expect_error delete_cluster.unknown CloudHsmResourceNotFoundException $ERR_ACCT $R1 delete-cluster --cluster-id cluster-aaaaaaaaaaa
  expect_error list_tags.unknown_backup CloudHsmResourceNotFoundException $ERR_ACCT $R1 list-tags --resource-id backup-aaaaaaaaaaa
}

err_limit() {
  err_cluster || return 1
  local tags=() i
  for i in $(seq -w 1 50); do tags+=("Key=k$i,Value=v"); done
  cli $ERR_ACCT $R1 tag-resource --resource-id "$ERR_CLUSTER" --tag-list "${tags[@]}" >/dev/null || { must "tag-resource (50 tags)"; return 1; }
  expect_error tag_resource.tag_51 CloudHsmResourceLimitExceededException $ERR_ACCT $R1 tag-resource --resource-id "$ERR_CLUSTER" --tag-list Key=k51,Value=v
  local n
  n="$(cli $ERR_ACCT $R1 list-tags --resource-id "$ERR_CLUSTER" --query 'length(TagList)' --output text)"
  expect tags_after "$n" 50
}

err_tag() {
  err_cluster || return 1
  expect_error tag_resource.aws_prefix CloudHsmTagException $ERR_ACCT $R1 tag-resource --resource-id "$ERR_CLUSTER" --tag-list Key=aws:x,Value=v
}

err_access_denied() {
  expect_error get_resource_policy.other_account CloudHsmAccessDeniedException $ERR_ACCT $R1 \
    get-resource-policy --resource-arn arn:aws:cloudhsm:us-east-1:999988887777:backup/backup-aaaaaaaaaaa
}

# CloudHsmServiceException and CloudHsmInternalFailureException cannot be
# provoked by a request: the admin API's fault injection makes the next
# DescribeClusters of the account fail with the code (retries are off).
err_injected() { # CODE
  admin POST faults "{\"operation\":\"DescribeClusters\",\"account\":\"$ERR_ACCT\",\"error\":\"$1\",\"count\":1}" >/dev/null || {
    fail "POST faults failed"
    return 1
  }
  expect_error describe_clusters.injected "$1" $ERR_ACCT $R1 describe-clusters
  cli $ERR_ACCT $R1 describe-clusters >/dev/null && obs next_call=ok || fail "the call after the spent fault failed: $(cat "$WORK/err")"
}
err_service() { err_injected CloudHsmServiceException; }
err_internal() { err_injected CloudHsmInternalFailureException; }

# ---- scenario 4: isolation ----

ISO_A=111111111111
ISO_B=222222222222
ISO_CA=""
ISO_CA2=""
ISO_CB=""

iso_setup() {
  [ -n "$ISO_CA" ] && return 0
  ISO_CA="$(cli $ISO_A $R1 create-cluster --hsm-type hsm2m.medium --subnet-ids "${SUBNETS[@]}" --tag-list Key=owner,Value=a --query Cluster.ClusterId --output text)" || { must create-cluster; return 1; }
  ISO_CA2="$(cli $ISO_A $R2 create-cluster --hsm-type hsm2m.medium --subnet-ids "${SUBNETS[@]}" --query Cluster.ClusterId --output text)" || { must create-cluster; return 1; }
  ISO_CB="$(cli $ISO_B $R1 create-cluster --hsm-type hsm2m.medium --subnet-ids "${SUBNETS[@]}" --query Cluster.ClusterId --output text)" || { must create-cluster; return 1; }
}

iso_account() {
  iso_setup || return 1
  local out
  out="$(cli $ISO_A $R1 describe-clusters --query 'Clusters[].ClusterId' --output text)"
  expect a.sees_only_own "$([ "$out" = "$ISO_CA" ] && echo yes)" yes
  out="$(cli $ISO_B $R1 describe-clusters --query 'Clusters[].ClusterId' --output text)"
  expect b.sees_only_own "$([ "$out" = "$ISO_CB" ] && echo yes)" yes
  out="$(cli $ISO_B $R1 describe-clusters --filters "clusterIds=$ISO_CA" --query 'length(Clusters)' --output text)"
  expect b.filter_on_a_cluster "$out" 0
  expect_error b.list_tags_a CloudHsmResourceNotFoundException $ISO_B $R1 list-tags --resource-id "$ISO_CA"
  expect_error b.delete_a CloudHsmResourceNotFoundException $ISO_B $R1 delete-cluster --cluster-id "$ISO_CA"
  expect_error b.tag_a CloudHsmResourceNotFoundException $ISO_B $R1 tag-resource --resource-id "$ISO_CA" --tag-list Key=x,Value=y
  local va vb
  va="$(cli $ISO_A $R1 describe-clusters --query 'Clusters[0].VpcId' --output text)"
  vb="$(cli $ISO_B $R1 describe-clusters --query 'Clusters[0].VpcId' --output text)"
  expect subnets_learned_per_account "$([ "$va" != "$vb" ] && echo yes)" yes
  out="$(cli $ISO_A $R1 list-tags --resource-id "$ISO_CA" --query 'TagList[0].Value' --output text)"
  expect a.tags_intact "$out" a
}

iso_region() {
  iso_setup || return 1
  local out
  out="$(cli $ISO_A $R2 describe-clusters --query 'Clusters[].ClusterId' --output text)"
  expect r2.sees_only_own "$([ "$out" = "$ISO_CA2" ] && echo yes)" yes
  out="$(cli $ISO_B $R2 describe-clusters --query 'length(Clusters)' --output text)"
  expect b.r2.empty "$out" 0
  expect_error r2.list_tags_r1_cluster CloudHsmResourceNotFoundException $ISO_A $R2 list-tags --resource-id "$ISO_CA"
  expect_error r2.create_hsm_r1_cluster CloudHsmResourceNotFoundException $ISO_A $R2 create-hsm --cluster-id "$ISO_CA" --availability-zone eu-west-1a
  out="$(cli $ISO_A $R2 describe-clusters --query 'keys(Clusters[0].SubnetMapping)[0]' --output text)"
  expect r2.az_region "${out%?}" eu-west-1
}

# ---- scenario 5: ENI addresses are unique in a subnet ----

net_ip_unique() {
  local a=555566667777 r=$R1 c1 c2 az out
  c1="$(cli $a $r create-cluster --hsm-type hsm2m.medium --subnet-ids "${SUBNETS[@]}" --query Cluster.ClusterId --output text)" || { must create-cluster; return 1; }
  c2="$(cli $a $r create-cluster --hsm-type hsm2m.medium --subnet-ids "${SUBNETS[@]}" --query Cluster.ClusterId --output text)" || { must create-cluster; return 1; }
  advance 1s
  az="$(first_az $a $r "$c1")"
  cli $a $r create-hsm --cluster-id "$c1" --availability-zone "$az" >/dev/null || { must create-hsm; return 1; }
  cli $a $r create-hsm --cluster-id "$c2" --availability-zone "$az" >/dev/null || { must create-hsm; return 1; }
  advance 1s
  out="$(cli $a $r describe-clusters --filters "clusterIds=$c1,$c2" --query 'Clusters[].Hsms[0].[SubnetId, EniIp]' --output text)" || { must describe-clusters; return 1; }
  local s1 ip1 s2 ip2
  { read -r s1 ip1; read -r s2 ip2; } <<<"$out"
  expect same_subnet "$([ -n "$s1" ] && [ "$s1" = "$s2" ] && echo yes)" yes
  expect distinct_eni_ips "$([ "$ip1" != "$ip2" ] && echo yes || echo "no (both $ip1)")" yes
}

# ---- run ----

# Timed transitions happen only when the suite advances the clock.
admin POST clock/freeze >/dev/null || {
  echo "run.sh: admin API unreachable at $ENDPOINT" >&2
  exit 4
}
# The frozen clock falls behind the wall clock while the suite runs, and the
# server checks SignedCert's validity against its own clock: start an hour
# ahead so that a certificate openssl issues "now" is already valid.
advance 1h

scenario lifecycle lifecycle
scenario paginate.describe-clusters paginate_clusters
scenario paginate.describe-backups paginate_backups
scenario paginate.list-tags paginate_tags
scenario error.CloudHsmInvalidRequestException err_invalid_request
scenario error.CloudHsmResourceNotFoundException err_not_found
scenario error.CloudHsmResourceLimitExceededException err_limit
scenario error.CloudHsmTagException err_tag
scenario error.CloudHsmAccessDeniedException err_access_denied
if admin GET faults >/dev/null 2>&1; then
  scenario error.CloudHsmServiceException err_service
  scenario error.CloudHsmInternalFailureException err_internal
else
  skip error.CloudHsmServiceException "cannot be provoked without fault injection, and this server has no admin faults endpoint"
  skip error.CloudHsmInternalFailureException "cannot be provoked without fault injection, and this server has no admin faults endpoint"
fi
scenario isolation.account iso_account
scenario isolation.region iso_region
scenario network.eni-ip-unique-in-subnet net_ip_unique

exit "$ANY_FAIL"
