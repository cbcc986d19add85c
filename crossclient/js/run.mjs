// Cross-client suite of cloudhsm-local through the AWS SDK for JavaScript v3
// (@aws-sdk/client-cloudhsm-v2, pinned in package.json / package-lock.json).
//
// Runs every scenario of crossclient/SCENARIOS.md against the server at
// $CLOUDHSM_ENDPOINT (a fresh --in-memory server) and prints one JSON line per
// scenario: {"client", "version", "scenario", "ok", "outcome", "detail"}.
// Exits non-zero if any scenario failed.
//
// The newest @aws-sdk/client-cloudhsm-v2 the npm registry serves here is
// 3.332.0 (May 2023). Its model predates the 2024 additions, so:
//   - it has no Put/Get/DeleteResourcePolicy commands: the suite sends them
//     through the client's own middleware stack (credentials, SigV4, HTTP,
//     typed error parsing) with rawOperation below;
//   - DescribeBackups drops Shared and the typed outputs drop BackupArn,
//     Mode, NetworkType: the suite adds Shared to the wire body and reads the
//     raw answer where it needs BackupArn;
//   - there is no CloudHsmResourceLimitExceededException class: that error
//     arrives as a CloudHSMV2ServiceException whose name is the code.
// Each of these is reported in the result line's "note".

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';

const ENDPOINT = (process.env.CLOUDHSM_ENDPOINT || 'http://127.0.0.1:4599').replace(/\/$/, '');

// Nothing from the machine leaks in: no config, no credentials, no profile.
const WORK = mkdtempSync(join(tmpdir(), 'crossclient-js-'));
const EMPTY = join(WORK, 'empty');
writeFileSync(EMPTY, '');
for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
process.env.AWS_CONFIG_FILE = EMPTY;
process.env.AWS_SHARED_CREDENTIALS_FILE = EMPTY;
process.env.AWS_EC2_METADATA_DISABLED = 'true';

let sdk;
try {
  sdk = await import('@aws-sdk/client-cloudhsm-v2');
} catch (e) {
  console.error(`run.mjs: @aws-sdk/client-cloudhsm-v2 is not installed (run npm ci in crossclient/js): ${e.message}`);
  process.exit(3);
}
const {
  CloudHSMV2Client,
  CloudHSMV2ServiceException,
  CopyBackupToRegionCommand,
  CreateClusterCommand,
  CreateHsmCommand,
  DeleteBackupCommand,
  DeleteClusterCommand,
  DeleteHsmCommand,
  DescribeBackupsCommand,
  DescribeClustersCommand,
  InitializeClusterCommand,
  ListTagsCommand,
  ModifyBackupAttributesCommand,
  ModifyClusterCommand,
  RestoreBackupCommand,
  TagResourceCommand,
  UntagResourceCommand,
  paginateDescribeBackups,
  paginateDescribeClusters,
  paginateListTags,
} = sdk;

const SDK_VERSION = JSON.parse(
  readFileSync(new URL('./node_modules/@aws-sdk/client-cloudhsm-v2/package.json', import.meta.url), 'utf8'),
).version;
const CLIENT = 'aws-sdk-js-v3';
const VERSION = `@aws-sdk/client-cloudhsm-v2/${SDK_VERSION} Node.js/${process.versions.node}`;

const R1 = 'us-east-1';
const R2 = 'eu-west-1';
const SUBNETS = ['subnet-0123456789abcdef0', 'subnet-0123456789abcdef1'];
const HSM_TYPE = 'hsm2m.medium';

// No retries, so that no error is hidden. maxAttempts: 1 is not enough in
// 3.332.0 (its @aws-sdk/util-retry counts retries from 0 and so retries once;
// the error.CloudHsmInternalFailureException scenario checks this): a retry
// strategy in the client's legacy form that just sends once does it.
const noRetry = { mode: 'standard', retry: (next, args) => next(args) };

const clients = new Map();
function newClient(account, region, retries) {
  return new CloudHSMV2Client({
    region,
    endpoint: ENDPOINT,
    credentials: { accessKeyId: account, secretAccessKey: 'cloudhsm-local-secret' },
    maxAttempts: 1,
    ...retries,
  });
}
function client(account, region = R1) {
  const key = `${account}/${region}`;
  if (!clients.has(key)) clients.set(key, newClient(account, region, { retryStrategy: noRetry }));
  return clients.get(key);
}

async function admin(method, path, body) {
  const res = await fetch(`${ENDPOINT}/_cloudhsm-local/${path}`, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) throw new Error(`admin ${method} ${path}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}
const advance = (duration) => admin('POST', 'clock/advance', { duration });

// ---- sending through the SDK's stack what its model lacks ----

// captureRaw adds to cmd a middleware that keeps the raw JSON answer (before
// the SDK's deserializer drops members its model does not know) and returns a
// getter for it.
function captureRaw(cmd) {
  let raw;
  cmd.middlewareStack.add(
    (next) => async (args) => {
      const result = await next(args);
      const chunks = [];
      for await (const c of result.response.body) chunks.push(Buffer.from(c));
      const buf = Buffer.concat(chunks);
      raw = buf.length ? JSON.parse(buf.toString('utf8')) : {};
      result.response.body = Readable.from([buf]);
      return result;
    },
    { step: 'deserialize', priority: 'low', name: 'crossclientCaptureRaw' },
  );
  return () => raw;
}

// patchBody adds members to the JSON body the serializer built.
function patchBody(cmd, members, target) {
  cmd.middlewareStack.add(
    (next) => async (args) => {
      const body = { ...JSON.parse(args.request.body || '{}'), ...members };
      if (target) {
        for (const k of Object.keys(body)) if (!(k in members)) delete body[k];
        args.request.headers['x-amz-target'] = `BaldrApiService.${target}`;
      }
      args.request.body = JSON.stringify(body);
      args.request.headers['content-length'] = String(Buffer.byteLength(args.request.body));
      return next(args);
    },
    { step: 'build', priority: 'low', name: 'crossclientPatchBody' },
  );
}

// rawOperation sends an operation the client does not model: a ListTags
// command is the carrier (its serializer, the client's credentials, SigV4
// signing, HTTP handler and typed error parsing all apply), renamed and given
// the operation's input on the wire. Returns the raw JSON answer.
async function rawOperation(c, operation, input) {
  const cmd = new ListTagsCommand({ ResourceId: 'cluster-placeholder00' });
  patchBody(cmd, input, operation);
  const raw = captureRaw(cmd);
  await c.send(cmd);
  return raw();
}

// ---- scenario bookkeeping ----

class Abort extends Error {}

class Scenario {
  constructor() {
    this.outcome = [];
    this.fails = [];
    this.notes = [];
  }
  obs(s) {
    this.outcome.push(s);
  }
  note(s) {
    if (!this.notes.includes(s)) this.notes.push(s);
  }
  expect(label, got, want) {
    got = String(got);
    this.obs(`${label}=${got}`);
    if (got !== String(want)) this.fails.push(`${label}: got ${JSON.stringify(got)}, want ${JSON.stringify(String(want))}`);
  }
  same(label, a, b) {
    this.expect(label, a === b ? 'same' : `differs (${a} vs ${b})`, 'same');
  }
  // error: the call must throw the client's typed exception for code want.
  async error(label, want, fn) {
    const Typed = sdk[want];
    try {
      await fn();
    } catch (e) {
      this.obs(`${label}=${e.name}`);
      if (Typed) {
        if (!(e instanceof Typed)) this.fails.push(`${label}: ${e.name} is not an instance of ${want}`);
      } else {
        if (!(e instanceof CloudHSMV2ServiceException)) this.fails.push(`${label}: ${e.name} is not a CloudHSMV2ServiceException`);
        this.note(`client ${SDK_VERSION} has no ${want} class: caught as CloudHSMV2ServiceException with name ${e.name}`);
      }
      if (e.name !== want) this.fails.push(`${label}: got ${e.name} (${e.message}), want ${want}`);
      const status = e.$metadata?.httpStatusCode;
      const wantStatus = want === 'CloudHsmInternalFailureException' ? 500 : 400;
      if (status !== wantStatus) this.fails.push(`${label}: HTTP status ${status}, want ${wantStatus}`);
      return;
    }
    this.obs(`${label}=no error`);
    this.fails.push(`${label}: call succeeded, want ${want}`);
  }
}

let anyFail = false;

function emit(scenario, ok, outcome, detail, extra = {}) {
  console.log(JSON.stringify({ client: CLIENT, version: VERSION, scenario, ok, outcome, detail, ...extra }));
}

async function run(name, fn) {
  const s = new Scenario();
  const start = Date.now();
  try {
    await fn(s);
  } catch (e) {
    s.fails.push(e instanceof Abort ? e.message : `${e.name}: ${e.message}`);
  }
  const extra = s.notes.length ? { note: s.notes.join('; ') } : {};
  if (s.fails.length) {
    anyFail = true;
    emit(name, false, s.outcome, s.fails.join('; '), extra);
  } else {
    emit(name, true, s.outcome, `passed in ${Math.round((Date.now() - start) / 1000)}s`, extra);
  }
}

function skip(name, why) {
  emit(name, true, ['skipped'], why, { skipped: true });
}

// ---- the organisation's CA (openssl, as the AWS user guide does it) ----

let caReady = false;
function makeCA() {
  if (caReady) return;
  execFileSync('openssl', ['genrsa', '-out', join(WORK, 'customerCA.key'), '2048'], { stdio: 'pipe' });
  execFileSync(
    'openssl',
    ['req', '-new', '-x509', '-days', '3652', '-key', join(WORK, 'customerCA.key'), '-out', join(WORK, 'customerCA.crt'),
      '-subj', '/C=US/O=Example Org/CN=Example Org Root CA'],
    { stdio: 'pipe' },
  );
  caReady = true;
}
const trustAnchor = () => (makeCA(), readFileSync(join(WORK, 'customerCA.crt'), 'utf8'));
function signCsr(clusterId, csr) {
  makeCA();
  const csrFile = join(WORK, `${clusterId}_ClusterCsr.csr`);
  const out = join(WORK, `${clusterId}_CustomerHsmCertificate.crt`);
  writeFileSync(csrFile, csr);
  execFileSync(
    'openssl',
    ['x509', '-req', '-days', '3652', '-in', csrFile, '-CA', join(WORK, 'customerCA.crt'),
      '-CAkey', join(WORK, 'customerCA.key'), '-CAcreateserial', '-out', out],
    { stdio: 'pipe' },
  );
  return readFileSync(out, 'utf8');
}

// ---- helpers ----

async function describe(c, id) {
  const out = (await c.send(new DescribeClustersCommand({ Filters: { clusterIds: [id] } }))).Clusters;
  if (out.length !== 1) throw new Abort(`DescribeClusters(${id}) returned ${out.length} clusters`);
  return out[0];
}
async function createCluster(c, extra = {}) {
  return (await c.send(new CreateClusterCommand({ HsmType: HSM_TYPE, SubnetIds: SUBNETS, ...extra }))).Cluster;
}
const tagString = (tags) => tags.map((t) => `${t.Key}=${t.Value}`).join(',');

async function activeCluster(c) {
  const id = (await createCluster(c)).ClusterId;
  await advance('1s');
  const az = Object.keys((await describe(c, id)).SubnetMapping).sort()[0];
  await c.send(new CreateHsmCommand({ ClusterId: id, AvailabilityZone: az }));
  await advance('1s');
  const csr = (await describe(c, id)).Certificates.ClusterCsr;
  await c.send(new InitializeClusterCommand({ ClusterId: id, SignedCert: signCsr(id, csr), TrustAnchor: trustAnchor() }));
  await advance('1s');
  await advance('1s');
  await advance('1s');
  if ((await describe(c, id)).State !== 'ACTIVE') throw new Abort(`cluster ${id} did not become ACTIVE`);
  return id;
}

// ---- scenario 1: the whole lifecycle ----

const ACCT = '123456789012';
const PEER = '111122223333';

async function lifecycle(s) {
  const c = client(ACCT, R1);
  const r = R1;
  let cl = await createCluster(c);
  const cid = cl.ClusterId;
  s.expect('create.state', cl.State, 'CREATE_IN_PROGRESS');
  s.expect('create.azs', Object.keys(cl.SubnetMapping).length, 2);

  await advance('1s');
  cl = await describe(c, cid);
  s.expect('uninitialized.state', cl.State, 'UNINITIALIZED');
  s.expect('uninitialized.hsms', cl.Hsms.length, 0);
  s.expect('uninitialized.csr_absent', cl.Certificates?.ClusterCsr === undefined ? 'True' : 'False', 'True');

  const [az, az2] = Object.keys(cl.SubnetMapping).sort();
  let h = (await c.send(new CreateHsmCommand({ ClusterId: cid, AvailabilityZone: az }))).Hsm;
  const hsm1 = h.HsmId;
  s.expect('hsm1.create.state', h.State, 'CREATE_IN_PROGRESS');

  await advance('1s');
  cl = await describe(c, cid);
  s.expect('hsm1.cluster.state', cl.State, 'UNINITIALIZED');
  s.expect('hsm1.state', cl.Hsms[0].State, 'ACTIVE');
  s.expect('hsm1.subnet_matches_az', cl.Hsms[0].SubnetId === cl.SubnetMapping[az] ? 'True' : 'False', 'True');

  const csr = cl.Certificates.ClusterCsr;
  s.expect('csr.pem', csr.split('\n')[0], '-----BEGIN CERTIFICATE REQUEST-----');
  const ini = await c.send(new InitializeClusterCommand({ ClusterId: cid, SignedCert: signCsr(cid, csr), TrustAnchor: trustAnchor() }));
  s.expect('initialize.state', ini.State, 'INITIALIZE_IN_PROGRESS');
  s.expect('initialize.message', ini.StateMessage, 'Cluster is initializing. State will change to INITIALIZED upon completion.');

  await advance('600ms');
  s.expect('initialized.state', (await describe(c, cid)).State, 'INITIALIZED');
  await advance('1s');
  s.expect('activated.state', (await describe(c, cid)).State, 'ACTIVE');

  h = (await c.send(new CreateHsmCommand({ ClusterId: cid, AvailabilityZone: az2 }))).Hsm;
  const hsm2 = h.HsmId;
  s.expect('hsm2.create.state', h.State, 'CREATE_IN_PROGRESS');
  await advance('1s');
  await advance('1s');
  s.expect('hsms.states', (await describe(c, cid)).Hsms.map((x) => x.State).join(','), 'ACTIVE,ACTIVE');

  // BackupArn is not in this client's model: read it from the raw answer.
  const dbCmd = new DescribeBackupsCommand({ Filters: { clusterIds: [cid] }, SortAscending: true });
  const dbRaw = captureRaw(dbCmd);
  const backups = (await c.send(dbCmd)).Backups;
  s.expect('backups.count', backups.length, 2);
  s.expect('backups.states', backups.map((b) => b.BackupState).join(','), 'READY,READY');
  const bid = backups[0].BackupId;
  const barn = dbRaw().Backups[0].BackupArn;
  if (backups[0].BackupArn === undefined) s.note(`client ${SDK_VERSION} drops Backup.BackupArn: read from the raw answer`);
  s.expect('backup.arn', barn === `arn:aws:cloudhsm:${r}:${ACCT}:backup/${bid}` ? 'well-formed' : barn, 'well-formed');

  const dest = (await c.send(new CopyBackupToRegionCommand({ DestinationRegion: R2, BackupId: bid }))).DestinationBackup;
  s.same('copy.source_backup', dest.SourceBackup, bid);
  s.expect('copy.source_region', dest.SourceRegion, r);
  s.same('copy.source_cluster', dest.SourceCluster, cid);
  const c2 = client(ACCT, R2);
  let copies = (await c2.send(new DescribeBackupsCommand({ Filters: { sourceBackupIds: [bid] } }))).Backups;
  s.expect('copy.found', copies.length, 1);
  if (!copies.length) throw new Abort('no copy found in the destination region');
  s.expect('copy.state', copies[0].BackupState, 'CREATE_IN_PROGRESS');
  s.expect('copy.dest_source_region', copies[0].SourceRegion, r);
  await advance('1s');
  copies = (await c2.send(new DescribeBackupsCommand({ Filters: { sourceBackupIds: [bid] } }))).Backups;
  s.expect('copy.ready', copies[0].BackupState, 'READY');
  s.expect('copy.not_in_source_region', (await c.send(new DescribeBackupsCommand({ Filters: { sourceBackupIds: [bid] } }))).Backups.length, 0);

  let rc = await createCluster(c, { SourceBackupId: bid });
  const rid = rc.ClusterId;
  s.expect('restore.state', rc.State, 'CREATE_IN_PROGRESS');
  s.same('restore.source_backup', rc.SourceBackupId, bid);
  s.expect('restore.cluster_certificate', rc.Certificates?.ClusterCertificate !== undefined ? 'True' : 'False', 'True');
  await advance('1s');
  rc = await describe(c, rid);
  s.expect('restore.active', rc.State, 'ACTIVE');
  s.expect('restore.hsms', rc.Hsms.length, 0);

  await c.send(new TagResourceCommand({ ResourceId: cid, TagList: [{ Key: 'team', Value: 'platform' }, { Key: 'env', Value: 'test' }] }));
  s.expect('tags', tagString((await c.send(new ListTagsCommand({ ResourceId: cid }))).TagList), 'env=test,team=platform');
  s.expect('cluster.taglist', ((await describe(c, cid)).TagList || []).length, 2);
  await c.send(new UntagResourceCommand({ ResourceId: cid, TagKeyList: ['env'] }));
  s.expect('untagged', tagString((await c.send(new ListTagsCommand({ ResourceId: cid }))).TagList), 'team=platform');
  let out;

  out = (await c.send(new ModifyClusterCommand({ ClusterId: cid, BackupRetentionPolicy: { Type: 'DAYS', Value: '30' } }))).Cluster;
  s.expect('modify_cluster.retention', `${out.BackupRetentionPolicy.Type} ${out.BackupRetentionPolicy.Value}`, 'DAYS 30');
  const bid2 = backups[1].BackupId;
  out = (await c.send(new ModifyBackupAttributesCommand({ BackupId: bid2, NeverExpires: true }))).Backup;
  s.expect('modify_backup.never_expires', out.NeverExpires ? 'True' : 'False', 'True');
  out = (await c.send(new DeleteBackupCommand({ BackupId: bid2 }))).Backup;
  s.expect('delete_backup.state', out.BackupState, 'PENDING_DELETION');
  s.expect('delete_backup.delete_timestamp', out.DeleteTimestamp instanceof Date ? 'True' : 'False', 'True');
  out = (await c.send(new RestoreBackupCommand({ BackupId: bid2 }))).Backup;
  s.expect('restore_backup.state', out.BackupState, 'READY');
  s.expect('restore_backup.delete_timestamp_cleared', out.DeleteTimestamp === undefined ? 'True' : 'False', 'True');

  // Resource policies: not in this client's model (see the top of the file).
  if (!sdk.PutResourcePolicyCommand) s.note(`client ${SDK_VERSION} has no Put/Get/DeleteResourcePolicy commands and no DescribeBackups Shared: sent through its middleware stack`);
  const policy = JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Principal: { AWS: PEER },
        Action: ['cloudhsm:DescribeBackups', 'cloudhsm:CreateCluster'],
        Resource: barn,
      },
    ],
  });
  out = await rawOperation(c, 'PutResourcePolicy', { ResourceArn: barn, Policy: policy });
  s.same('put_policy.arn', out.ResourceArn, barn);
  s.same('put_policy.policy', out.Policy, policy);
  s.same('get_policy', (await rawOperation(c, 'GetResourcePolicy', { ResourceArn: barn })).Policy, policy);
  const peer = client(PEER, R1);
  const sharedBackups = async () => {
    const cmd = new DescribeBackupsCommand({});
    patchBody(cmd, { Shared: true });
    return (await peer.send(cmd)).Backups;
  };
  let shared = await sharedBackups();
  s.expect('shared.count', shared.length, 1);
  s.same('shared.backup', shared[0]?.BackupId, bid);
  s.expect('peer.own_backups', (await peer.send(new DescribeBackupsCommand({}))).Backups.length, 0);
  const pc = await createCluster(peer, { SourceBackupId: barn });
  const pid = pc.ClusterId;
  s.expect('peer.restore.state', pc.State, 'CREATE_IN_PROGRESS');
  s.same('delete_policy.previous', (await rawOperation(c, 'DeleteResourcePolicy', { ResourceArn: barn })).Policy, policy);
  shared = await sharedBackups();
  s.expect('shared.after_delete', shared.length, 0);
  s.expect('get_policy.after_delete', (await rawOperation(c, 'GetResourcePolicy', { ResourceArn: barn })).Policy ?? 'none', 'none');

  await advance('1s');
  s.same('delete_hsm1', (await c.send(new DeleteHsmCommand({ ClusterId: cid, HsmId: hsm1 }))).HsmId, hsm1);
  s.same('delete_hsm2', (await c.send(new DeleteHsmCommand({ ClusterId: cid, HsmId: hsm2 }))).HsmId, hsm2);
  s.expect('hsms.deleting', (await describe(c, cid)).Hsms.map((x) => x.State).join(','), 'DELETE_IN_PROGRESS,DELETE_IN_PROGRESS');
  await s.error('delete_cluster.with_hsms', 'CloudHsmInvalidRequestException', () => c.send(new DeleteClusterCommand({ ClusterId: cid })));
  await advance('1s');
  s.expect('hsms.gone', (await describe(c, cid)).Hsms.length, 0);
  for (const x of [cid, rid]) {
    out = (await c.send(new DeleteClusterCommand({ ClusterId: x }))).Cluster;
    s.expect('delete_cluster.state', out.State, 'DELETE_IN_PROGRESS');
    s.expect('delete_cluster.message', out.StateMessage, 'The cluster is being deleted.');
  }
  await peer.send(new DeleteClusterCommand({ ClusterId: pid }));
  await advance('1s');
  const states = (await c.send(new DescribeClustersCommand({ Filters: { clusterIds: [cid, rid] } }))).Clusters;
  s.expect('deleted.states', states.map((x) => x.State).join(','), 'DELETED,DELETED');
  s.expect('peer.deleted', (await describe(peer, pid)).State, 'DELETED');
}

// ---- scenario 2: paginators ----

const PAGE_ACCT = '222233334444';
const pagedClusters = [];

async function pageSizes(paginate, c, input, key, idField) {
  const sizes = [];
  const ids = [];
  for await (const page of paginate({ client: c, pageSize: 3 }, input)) {
    sizes.push(page[key].length);
    ids.push(...page[key].map((x) => x[idField]));
  }
  return { sizes: sizes.join(','), ids, items: ids.length };
}

async function paginateClusters(s) {
  const c = client(PAGE_ACCT);
  const created = [];
  for (let i = 0; i < 7; i++) created.push((await createCluster(c)).ClusterId);
  pagedClusters.push(...created);
  const { sizes, ids } = await pageSizes(paginateDescribeClusters, c, {}, 'Clusters', 'ClusterId');
  s.expect('pages', sizes, '3,3,1');
  s.expect('distinct', new Set(ids).size, 7);
  s.expect('same_set', [...ids].sort().join() === [...created].sort().join() ? 'yes' : 'no', 'yes');
  let total = 0;
  for await (const page of paginateDescribeClusters({ client: c, pageSize: 3 }, {})) total += page.Clusters.length;
  s.expect('auto_pagination.total', total, 7);
}

async function paginateBackups(s) {
  const c = client('333344445555');
  const cid = await activeCluster(c);
  await advance('144h30m');
  const filter = { Filters: { clusterIds: [cid] } };
  const { sizes, ids } = await pageSizes(paginateDescribeBackups, c, filter, 'Backups', 'BackupId');
  s.expect('pages', sizes, '3,3,1');
  s.expect('distinct', new Set(ids).size, 7);
  const stamps = async (input) => {
    const ts = [];
    for await (const page of paginateDescribeBackups({ client: c, pageSize: 3 }, input)) ts.push(...page.Backups.map((b) => b.CreateTimestamp.getTime()));
    return ts;
  };
  let ts = await stamps(filter);
  s.expect('order.newest_first', ts.join() === [...ts].sort((a, b) => b - a).join() ? 'yes' : 'no', 'yes');
  ts = await stamps({ ...filter, SortAscending: true });
  s.expect('order.sort_ascending', ts.join() === [...ts].sort((a, b) => a - b).join() ? 'yes' : 'no', 'yes');
  s.expect('auto_pagination.total', ts.length, 7);
}

async function paginateTags(s) {
  const c = client(PAGE_ACCT);
  const cid = pagedClusters[0] ?? (await createCluster(c)).ClusterId;
  const keys = Array.from({ length: 10 }, (_, i) => `key${String(i + 1).padStart(2, '0')}`);
  await c.send(new TagResourceCommand({ ResourceId: cid, TagList: keys.map((k, i) => ({ Key: k, Value: `value${String(i + 1).padStart(2, '0')}` })) }));
  const { sizes, ids } = await pageSizes(paginateListTags, c, { ResourceId: cid }, 'TagList', 'Key');
  s.expect('pages', sizes, '3,3,3,1');
  s.expect('keys', ids.join(','), keys.join(','));
  let total = 0;
  for await (const page of paginateListTags({ client: c, pageSize: 3 }, { ResourceId: cid })) total += page.TagList.length;
  s.expect('auto_pagination.total', total, 10);
}

// ---- scenario 3: every error code that can be provoked ----

const ERR_ACCT = '444455556666';
let errCluster;
async function getErrCluster() {
  errCluster ??= (await createCluster(client(ERR_ACCT))).ClusterId;
  return errCluster;
}

async function errInvalidRequest(s) {
  const c = client(ERR_ACCT);
  await s.error('describe_clusters.max_results_26', 'CloudHsmInvalidRequestException', () => c.send(new DescribeClustersCommand({ MaxResults: 26 })));
  await s.error('create_cluster.hsm_type', 'CloudHsmInvalidRequestException', () => c.send(new CreateClusterCommand({ HsmType: 'hsm9.bogus', SubnetIds: SUBNETS })));
}

async function errNotFound(s) {
  const c = client(ERR_ACCT);
  await s.error('delete_cluster.unknown', 'CloudHsmResourceNotFoundException', () => c.send(new DeleteClusterCommand({ ClusterId: 'cluster-aaaaaaaaaaa' })));
  await s.error('list_tags.unknown_backup', 'CloudHsmResourceNotFoundException', () => c.send(new ListTagsCommand({ ResourceId: 'backup-aaaaaaaaaaa' })));
}

async function errLimit(s) {
  const c = client(ERR_ACCT);
  const cid = await getErrCluster();
  await c.send(new TagResourceCommand({ ResourceId: cid, TagList: Array.from({ length: 50 }, (_, i) => ({ Key: `k${String(i + 1).padStart(2, '0')}`, Value: 'v' })) }));
  await s.error('tag_resource.tag_51', 'CloudHsmResourceLimitExceededException', () => c.send(new TagResourceCommand({ ResourceId: cid, TagList: [{ Key: 'k51', Value: 'v' }] })));
  s.expect('tags_after', (await c.send(new ListTagsCommand({ ResourceId: cid }))).TagList.length, 50);
}

async function errTag(s) {
  const c = client(ERR_ACCT);
  const cid = await getErrCluster();
  await s.error('tag_resource.aws_prefix', 'CloudHsmTagException', () => c.send(new TagResourceCommand({ ResourceId: cid, TagList: [{ Key: 'aws:x', Value: 'v' }] })));
}

async function errAccessDenied(s) {
  const c = client(ERR_ACCT);
  await s.error('get_resource_policy.other_account', 'CloudHsmAccessDeniedException', () =>
    rawOperation(c, 'GetResourcePolicy', { ResourceArn: 'arn:aws:cloudhsm:us-east-1:999988887777:backup/backup-aaaaaaaaaaa' }),
  );
  if (!sdk.GetResourcePolicyCommand) s.note(`client ${SDK_VERSION} has no GetResourcePolicyCommand: sent through its middleware stack`);
}

// CloudHsmServiceException and CloudHsmInternalFailureException cannot be
// provoked by a request: the admin API's fault injection makes the next
// DescribeClusters of the account fail with the code (retries are off).
const errInjected = (code) => async (s) => {
  const fault = { operation: 'DescribeClusters', account: ERR_ACCT, error: code, count: 1 };
  await admin('POST', 'faults', fault);
  const c = client(ERR_ACCT);
  await s.error('describe_clusters.injected', code, () => c.send(new DescribeClustersCommand({})));
  await c.send(new DescribeClustersCommand({}));
  s.obs('next_call=ok');
  if (code === 'CloudHsmInternalFailureException') {
    // Does maxAttempts: 1 alone turn retries off in this client?
    await admin('POST', 'faults', fault);
    try {
      const out = await newClient(ERR_ACCT, R1, {}).send(new DescribeClustersCommand({}));
      s.note(`client ${SDK_VERSION} retried an HTTP 500 although maxAttempts is 1 (attempts: ${out.$metadata.attempts}), so the suite turns retries off with its own retryStrategy`);
    } catch {
      // It does.
    }
  }
};

async function faultsAvailable() {
  try {
    await admin('GET', 'faults');
    return true;
  } catch {
    return false;
  }
}

// ---- scenario 4: isolation ----

const ISO_A = '111111111111';
const ISO_B = '222222222222';
let iso;
async function isoSetup() {
  if (!iso) {
    iso = {};
    iso.ca = (await createCluster(client(ISO_A, R1), { TagList: [{ Key: 'owner', Value: 'a' }] })).ClusterId;
    iso.ca2 = (await createCluster(client(ISO_A, R2))).ClusterId;
    iso.cb = (await createCluster(client(ISO_B, R1))).ClusterId;
  }
  return iso;
}
const clusters = async (c) => (await c.send(new DescribeClustersCommand({}))).Clusters;
const ids = async (c) => (await clusters(c)).map((x) => x.ClusterId);

async function isoAccount(s) {
  const i = await isoSetup();
  const a = client(ISO_A, R1);
  const b = client(ISO_B, R1);
  let got = await ids(a);
  s.expect('a.sees_only_own', got.join() === i.ca ? 'yes' : got.join(), 'yes');
  got = await ids(b);
  s.expect('b.sees_only_own', got.join() === i.cb ? 'yes' : got.join(), 'yes');
  s.expect('b.filter_on_a_cluster', (await b.send(new DescribeClustersCommand({ Filters: { clusterIds: [i.ca] } }))).Clusters.length, 0);
  await s.error('b.list_tags_a', 'CloudHsmResourceNotFoundException', () => b.send(new ListTagsCommand({ ResourceId: i.ca })));
  await s.error('b.delete_a', 'CloudHsmResourceNotFoundException', () => b.send(new DeleteClusterCommand({ ClusterId: i.ca })));
  await s.error('b.tag_a', 'CloudHsmResourceNotFoundException', () => b.send(new TagResourceCommand({ ResourceId: i.ca, TagList: [{ Key: 'x', Value: 'y' }] })));
  const va = (await clusters(a))[0].VpcId;
  const vb = (await clusters(b))[0].VpcId;
  s.expect('subnets_learned_per_account', va !== vb ? 'yes' : 'no', 'yes');
  s.expect('a.tags_intact', (await a.send(new ListTagsCommand({ ResourceId: i.ca }))).TagList[0].Value, 'a');
}

async function isoRegion(s) {
  const i = await isoSetup();
  const a2 = client(ISO_A, R2);
  const b2 = client(ISO_B, R2);
  const got = await ids(a2);
  s.expect('r2.sees_only_own', got.join() === i.ca2 ? 'yes' : got.join(), 'yes');
  s.expect('b.r2.empty', (await clusters(b2)).length, 0);
  await s.error('r2.list_tags_r1_cluster', 'CloudHsmResourceNotFoundException', () => a2.send(new ListTagsCommand({ ResourceId: i.ca })));
  await s.error('r2.create_hsm_r1_cluster', 'CloudHsmResourceNotFoundException', () =>
    a2.send(new CreateHsmCommand({ ClusterId: i.ca, AvailabilityZone: 'eu-west-1a' })),
  );
  const az = Object.keys((await clusters(a2))[0].SubnetMapping)[0];
  s.expect('r2.az_region', az.slice(0, -1), 'eu-west-1');
}

// ---- scenario 5: ENI addresses are unique in a subnet ----

async function netIpUnique(s) {
  const c = client('555566667777');
  const c1 = (await createCluster(c)).ClusterId;
  const c2 = (await createCluster(c)).ClusterId;
  await advance('1s');
  const az = Object.keys((await describe(c, c1)).SubnetMapping).sort()[0];
  await c.send(new CreateHsmCommand({ ClusterId: c1, AvailabilityZone: az }));
  await c.send(new CreateHsmCommand({ ClusterId: c2, AvailabilityZone: az }));
  await advance('1s');
  const [[s1, ip1], [s2, ip2]] = (await c.send(new DescribeClustersCommand({ Filters: { clusterIds: [c1, c2] } }))).Clusters.map((x) => [
    x.Hsms[0].SubnetId,
    x.Hsms[0].EniIp,
  ]);
  s.expect('same_subnet', s1 && s1 === s2 ? 'yes' : 'no', 'yes');
  s.expect('distinct_eni_ips', ip1 !== ip2 ? 'yes' : `no (both ${ip1})`, 'yes');
}

// ---- run ----

try {
  try {
    await admin('POST', 'clock/freeze');
  } catch (e) {
    console.error(`run.mjs: admin API unreachable at ${ENDPOINT}: ${e.message}`);
    process.exit(4);
  }
  // The frozen clock falls behind the wall clock while the suite runs, and the
  // server checks SignedCert's validity against its own clock.
  await advance('1h');
  await run('lifecycle', lifecycle);
  await run('paginate.describe-clusters', paginateClusters);
  await run('paginate.describe-backups', paginateBackups);
  await run('paginate.list-tags', paginateTags);
  await run('error.CloudHsmInvalidRequestException', errInvalidRequest);
  await run('error.CloudHsmResourceNotFoundException', errNotFound);
  await run('error.CloudHsmResourceLimitExceededException', errLimit);
  await run('error.CloudHsmTagException', errTag);
  await run('error.CloudHsmAccessDeniedException', errAccessDenied);
  for (const code of ['CloudHsmServiceException', 'CloudHsmInternalFailureException']) {
    if (await faultsAvailable()) await run(`error.${code}`, errInjected(code));
    else skip(`error.${code}`, 'cannot be provoked without fault injection, and this server has no admin faults endpoint');
  }
  await run('isolation.account', isoAccount);
  await run('isolation.region', isoRegion);
  await run('network.eni-ip-unique-in-subnet', netIpUnique);
} finally {
  rmSync(WORK, { recursive: true, force: true });
}
process.exit(anyFail ? 1 : 0);
