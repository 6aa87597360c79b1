// Package faults holds lockproxy's fault-injection suite: real lockproxy
// processes on a real redis-server, worked by clients that record what they
// believed into a safety.History while the suite kills, stops, delays,
// partitions and floods them. After each fault the history is checked for
// broken promises, and each fault adds a row to a report table. The
// package has no code outside its tests, which need redis-server and fail,
// never skip, without it.
//
//	go test -race ./faults/                          # the standard run
//	go test ./faults/ -args -faults.long             # heavier variants, and ones that may find violations outside the promise
//	FAULTS_REPORT=/tmp/faults.md go test ./faults/   # the table as markdown (a relative path is from faults/)
package faults
