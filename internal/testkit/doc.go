// Package testkit holds the helpers that more than one test suite of this
// repository needs, so that each is written once:
//
//   - raw AWS JSON 1.1 requests of the CloudHSM v2 API, as the SDKs shape
//     them, optionally SigV4-signed as a tenant (NewAWSJSONRequest,
//     PayloadSHA256, SignAsAccount; AWSJSONContentType, TargetPrefix,
//     AnySecret);
//   - an organisation's certificate authority that signs cluster CSRs (CA,
//     NewCA);
//   - a moto_server process for tests that need an EC2 emulator, with an
//     EC2 Query API client of it (StartMotoServer, MotoServer, MotoRegion,
//     EC2Error);
//   - external tools: the CI=true rule for a missing one (MissingTool), and
//     finding one on PATH under that rule (LookPath);
//   - the cloudhsm-local binary: building it (BuildServerBinary) and
//     starting it in memory on a free port for one test (StartBinary);
//   - a child process's output: a buffer that collects it (LockedBuffer),
//     and its last bytes for a failure message (Tail).
//
// Its subpackage pgtest starts private PostgreSQL servers for tests.
//
// Only test code imports it (_test.go files, and pgtest); production code
// must not. It keeps no
// package-level mutable state, so that tests and servers can run side by
// side.
package testkit
