// Package readme keeps README.md true. Its test runs every shell block of
// the README, top to bottom, in one bash session in a temporary copy of
// the repository, as a newcomer pasting them into a terminal would, and
// fails on any non-zero exit status the README does not announce.
//
// The rules the README is written to, so the test can run it as written:
//
//   - A shell block is a fence with the info string sh, bash or shell.
//     Blocks share one shell: variables and background jobs carry over.
//   - A command may exit non-zero only where the README says so, with a
//     comment on the command such as "# exits 3 if the challenger is
//     refused"; 0 is always accepted.
//   - Servers run in the background with "&" and the next command waits
//     for them (curl --retry-connrefused); the test stops every process
//     the script started when it ends.
//   - Addresses are written 127.0.0.1:PORT or localhost:PORT. The test
//     replaces each port the README names by the one the environment
//     gives in $TRIAGE_README_PORT_<PORT>, else by a free one below the
//     kernel's ephemeral range, so a run never collides with a server
//     already on the machine, nor with the client connections of tests
//     running beside it.
//   - Blocks that read the shared public data (../shared/datasets) run
//     when it is there ($TRIAGE_DATASETS or ../shared/datasets beside the
//     repository) and are skipped, with a log line, when it is not.
//   - "make test" is not run: it is the command that runs this test.
//   - curl runs with --fail-with-body (from a .curlrc the test writes),
//     so an HTTP error fails the step as it would fail a person.
//   - Each line of a json block must be a JSON value: the README shows
//     log records, and a log holds one record per line.
package readme
