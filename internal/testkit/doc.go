// Package testkit holds the helpers that more than one test suite of this
// repository needs, so that each is written once:
//
//   - raw AWS JSON 1.1 requests of the CloudHSM v2 API, as the SDKs shape
//     them, optionally SigV4-signed as a tenant (NewAWSJSONRequest,
//     SignAsAccount);
//   - an organisation's certificate authority that signs cluster CSRs (CA);
//   - a moto_server process for tests that need an EC2 emulator
//     (StartMotoServer), and the CI=true rule for missing external tools
//     (MissingTool);
//   - building the cloudhsm-local binary (BuildServerBinary);
//   - a buffer that collects a child process's output (LockedBuffer).
//
// Only _test.go files import it; production code must not. It keeps no
// package-level mutable state, so that tests and servers can run side by
// side.
package testkit
