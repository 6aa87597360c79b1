package main

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lockproxy/lockproxy/internal/redistest"
)

// A sidecar on a Sentinel upstream follows a failover: an owned lock and a
// detached one survive it (the replica had them; their ttls outlast even a
// failover Sentinel has to retry), no lock.lost is pushed, they renew
// against the new primary, and grants resume after the
// check interval that every sidecar is given to check its locks; with
// LOCKPROXY_REPLICA_ACKS=1 as well as without.
func TestSentinelFailoverKeepsLocks(t *testing.T) {
	for _, acks := range []int{0, 1} {
		t.Run("acks="+strconv.Itoa(acks), func(t *testing.T) {
			t.Parallel()
			sen := redistest.StartSentinel(t, redistest.SentinelOptions{DataArgs: []string{"--repl-diskless-sync-delay", "0"}})
			a := startProxy(t, map[string]string{"UPSTREAM": sen.URL(), "REPLICA_ACKS": strconv.Itoa(acks)})
			push, _ := holder(t, a, "kept", 20000)
			plain := a.conn(t, 2)
			mustToken(t, plain, "detached", 30000, "DETACHED")
			// Both writes must be on the replicas before the failover, or the
			// new primary lacks them: that is the loss the other tests cover.
			if acks == 0 {
				if err := sen.Primary(t).Client(t).Do(bg(), "WAIT", 2, 5000).Err(); err != nil {
					t.Fatal(err)
				}
			}

			old, _ := sen.Failover(t)
			resumed := untilGranted(t, plain, "after", 5000, time.Now())
			// Had the lock been declared lost, its push would come before
			// these replies; the renewal goes to the new primary.
			push.send(t, cmd("LOCK.RENEW", "kept", "20000"))
			if got := push.frame(t); !slices.Equal(got, []string{":1"}) {
				t.Fatalf("LOCK.RENEW on the holder's connection after the failover = %q, want 1 and no push", got)
			}
			push.send(t, cmd("LOCK.HELD"))
			if got := push.frame(t); !slices.Equal(got, []string{"*1", "$4", "kept"}) {
				t.Fatalf("LOCK.HELD on the holder's connection after the failover = %q, want kept", got)
			}
			mustNull(t, plain, "kept")
			mustInt(t, 1, plain, "LOCK.RENEW", "detached", 30000)
			if n := infoField(t, plain, "locks_lost_total"); n != "0" {
				t.Errorf("locks_lost_total = %s, want 0", n)
			}
			if role, _ := old.Client(t).Do(bg(), "ROLE").Slice(); len(role) == 0 || role[0] != "slave" {
				t.Errorf("the old primary's role is %v after the failover", role)
			}
			t.Logf("acks=%d: grants resumed %v after the failover settled", acks, resumed.Round(time.Millisecond))
		})
	}
}
