package lockproxytest_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/lockproxy/lockproxy/lockproxytest"
)

// lockproxyAddr is one lockproxy shared by every test of the package.
var lockproxyAddr string

func TestMain(m *testing.M) {
	addr, stop, err := lockproxytest.StartServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lockproxyAddr = addr
	code := m.Run()
	stop()
	os.Exit(code)
}
