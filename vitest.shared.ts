// Settings every package's vitest.config.ts shares.
//
// Timeouts guard against hangs; they are not speed checks. A test's pass must not depend on the
// machine's load (`npm test` runs the suites in parallel, on 2 cores, perhaps beside another job),
// so each test is sized to take a few seconds at most on a loaded machine, long counts run under
// `npm run test:long`, and the limit below is far above any test's real time.
export const hangGuard = { testTimeout: 300_000, hookTimeout: 300_000 };
