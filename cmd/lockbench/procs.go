package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// processes are the redis-server and sidecars lockbench started; it stops
// them, by their own PIDs, when it is done.
type processes struct {
	cmds        []*exec.Cmd
	dirs        []string
	sidecarPIDs []int // of the sidecars, for their CPU time
	// metricsAddrs are the sidecars' /metrics listeners.
	metricsAddrs []string
}

func (p *processes) stop() {
	for i := len(p.cmds) - 1; i >= 0; i-- {
		c := p.cmds[i]
		_ = c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() {
			_ = c.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
	for _, d := range p.dirs {
		_ = os.RemoveAll(d)
	}
}

// start runs argv, under taskset when cpus is set.
func (p *processes) start(cpus string, env []string, argv ...string) error {
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	c := exec.Command(argv[0], argv[1:]...)
	c.Env = append(os.Environ(), env...)
	c.Stderr = os.Stderr
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		return err
	}
	p.cmds = append(p.cmds, c)
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitAnswer waits until addr answers PING.
func waitAnswer(addr string) error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := dial(addr); err == nil {
			r, err := c.do("PING")
			c.Close()
			if err == nil && r.Str == "PONG" {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer PING within 10s", addr)
}

// redis returns the address of the Redis to use, starting a redis-server
// in a temporary directory unless -redis names one.
func (p *processes) redis(cfg config) (string, error) {
	if cfg.redisURL != "" {
		u, err := url.Parse(cfg.redisURL)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("-redis: want redis://host:port, got %q", cfg.redisURL)
		}
		return u.Host, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", errors.New("redis-server not found: install it (apt-get install redis-server) or pass -redis")
	}
	dir, err := os.MkdirTemp("", "lockbench-redis-")
	if err != nil {
		return "", err
	}
	p.dirs = append(p.dirs, dir)
	port, err := freePort()
	if err != nil {
		return "", err
	}
	err = p.start(cfg.redisCPU, nil, bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", filepath.Join(dir, "redis.log"))
	if err != nil {
		return "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	return addr, waitAnswer(addr)
}

// sidecars starts cfg.sidecars lockproxy processes and returns their addresses.
func (p *processes) sidecars(cfg config, redisAddr string) ([]string, error) {
	bin, err := exec.LookPath(cfg.lockproxy)
	if err != nil {
		return nil, fmt.Errorf("-lockproxy %q: %w (build it: go build -o lockproxy ./cmd/lockproxy)", cfg.lockproxy, err)
	}
	var addrs []string
	for range cfg.sidecars {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		mport, err := freePort()
		if err != nil {
			return nil, err
		}
		maddr := "127.0.0.1:" + strconv.Itoa(mport)
		env := []string{"LOCKPROXY_LISTEN=" + addr, "LOCKPROXY_LOG_LEVEL=warn", "LOCKPROXY_MAX_WAIT=1h",
			"LOCKPROXY_METRICS_LISTEN=" + maddr, "LOCKPROXY_MAX_CLIENTS=100000", "LOCKPROXY_MAX_LOCKS_PER_CONN=100000"}
		switch {
		case cfg.upstream != "":
			env = append(env, "LOCKPROXY_UPSTREAM="+cfg.upstream)
		case cfg.store == "redis":
			env = append(env, "LOCKPROXY_UPSTREAM=redis://"+redisAddr+"/0")
		}
		if err := p.start(cfg.sidecarCPU, env, bin); err != nil {
			return nil, err
		}
		// taskset execs the sidecar in its own process.
		p.sidecarPIDs = append(p.sidecarPIDs, p.cmds[len(p.cmds)-1].Process.Pid)
		if err := waitAnswer(addr); err != nil {
			return nil, err
		}
		addrs = append(addrs, addr)
		p.metricsAddrs = append(p.metricsAddrs, maddr)
	}
	return addrs, nil
}
