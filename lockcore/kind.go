package lockcore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind is how a name is held: by one holder at a time (the zero Kind, a
// plain lock, which is also a read-write lock's writer); by any number of
// readers (Shared); or by up to Limit holders of a counting semaphore.
// Every holder has a token and a fence of its own, and fences rise per
// name across all of them.
//
// Kinds of one family may hold or wait for a name together: the plain lock
// and Shared (a read-write lock), or one semaphore's Limit. A request of
// another family than the name's holders, or when it is free its first
// waiter, is refused (Grant.Mismatch), never admitted: a semaphore asked
// for with a larger limit than its holders use could otherwise let in
// more holders than either limit.
type Kind struct {
	Shared bool
	Limit  int // > 0: a counting semaphore of Limit permits
}

// Exclusive reports whether k is the plain, one-holder lock.
func (k Kind) Exclusive() bool { return !k.Shared && k.Limit <= 0 }

// Family reports whether k and o may hold or wait for one name together.
func (k Kind) Family(o Kind) bool { return max(k.Limit, 0) == max(o.Limit, 0) }

// String names k as replies and logs show it.
func (k Kind) String() string {
	switch {
	case k.Limit > 0:
		return "semaphore of LIMIT " + strconv.Itoa(k.Limit)
	case k.Shared:
		return "shared"
	}
	return "exclusive"
}

// Mode names k's kind alone, as LOCK.INFO shows it: "exclusive", "shared"
// or "semaphore".
func (k Kind) Mode() string {
	switch {
	case k.Limit > 0:
		return "semaphore"
	case k.Shared:
		return "shared"
	}
	return "exclusive"
}

// Code is k as the stores record it: "" for exclusive, "s" for shared,
// "l<n>" for a semaphore of n.
func (k Kind) Code() string {
	switch {
	case k.Limit > 0:
		return "l" + strconv.Itoa(k.Limit)
	case k.Shared:
		return "s"
	}
	return ""
}

// ParseKindCode is the inverse of Code.
func ParseKindCode(code string) (Kind, bool) {
	switch {
	case code == "":
		return Kind{}, true
	case code == "s":
		return Kind{Shared: true}, true
	case strings.HasPrefix(code, "l"):
		n, err := strconv.Atoi(code[1:])
		if err != nil || n < 1 || code[1] == '+' || code[1] == '0' {
			return Kind{}, false
		}
		return Kind{Limit: n}, true
	}
	return Kind{}, false
}

// Holder is one holder of a name whose kind has many (Shared or Limit).
type Holder struct {
	Token   string
	Fence   int64
	TTL     time.Duration // time left
	Revoked bool
}

// ErrWrongKind is what a *KindError matches (errors.Is).
var ErrWrongKind = errors.New("lockcore: the name is held as another kind")

// KindError says why an acquire of Asked was refused: the name is held (or,
// free, waited for first) as Held, of another family (see Kind); or, with
// Self, the session holds it already, as Held.
type KindError struct {
	Name        string
	Held, Asked Kind
	Self        bool
}

func (e *KindError) Error() string {
	if e.Self {
		return fmt.Sprintf("this connection holds %q as %s already, not as %s: release it first", e.Name, e.Held, e.Asked)
	}
	return fmt.Sprintf("%q is held as %s, not as %s", e.Name, e.Held, e.Asked)
}

// Is makes a *KindError match ErrWrongKind.
func (e *KindError) Is(target error) bool { return target == ErrWrongKind }
