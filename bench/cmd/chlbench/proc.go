package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is a cloudhsm-local binary running as a subprocess.
type server struct {
	cmd  *exec.Cmd
	url  string
	name string
	// startup is the time from just before exec to the first answered
	// DescribeClusters; listening is the time to the "listening on" line.
	startup, listening time.Duration
	done               chan error
	logf               *os.File
}

// startServer runs bin with args plus --listen 127.0.0.1:0 (a free port the
// kernel picks; the binary prints it in its first line), waits for the first
// answered DescribeClusters of account, and returns the running server.
// The server's stdout and stderr go to a log file in logDir.
func startServer(ctx context.Context, bin, logDir, name string, args []string) (*server, error) {
	logf, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		return nil, err
	}
	args = append([]string{"--listen", "127.0.0.1:0"}, args...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	s := &server{cmd: cmd, name: name, done: make(chan error, 1), logf: logf}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { s.done <- cmd.Wait() }()
	lines := make(chan string, 1)
	go func() {
		br := bufio.NewReader(out)
		line, _ := br.ReadString('\n')
		lines <- line
		_, _ = io.Copy(logf, br)
	}()
	const prefix = "cloudhsm-local listening on "
	select {
	case line := <-lines:
		s.listening = time.Since(t0)
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, prefix) {
			s.kill()
			return nil, fmt.Errorf("%s: first line is %q, want %q...; log in %s", name, line, prefix, logf.Name())
		}
		s.url = strings.TrimPrefix(line, prefix)
	case err := <-s.done:
		s.done <- err
		return nil, fmt.Errorf("%s exited before listening: %v; log in %s", name, err, logf.Name())
	case <-time.After(5 * time.Minute):
		s.kill()
		return nil, fmt.Errorf("%s: no listening line after 5 minutes", name)
	}
	// Poll until a request is answered: the listener is bound before the
	// line is printed, so the first attempt normally waits in the backlog.
	c := newClient(s.url, 1)
	defer c.close()
	probe := newRequest(benchAccount, "DescribeClusters", []byte(`{"MaxResults": 25}`))
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		err := c.send(rctx, probe)
		cancel()
		if err == nil {
			break
		}
		var ae *apiError
		if errors.As(err, &ae) {
			s.kill()
			return nil, fmt.Errorf("%s: first request: %w", name, err)
		}
		select {
		case err := <-s.done:
			s.done <- err
			return nil, fmt.Errorf("%s exited: %v; log in %s", name, err, logf.Name())
		case <-time.After(200 * time.Microsecond):
		}
		if time.Since(t0) > 5*time.Minute {
			s.kill()
			return nil, fmt.Errorf("%s: no answer after 5 minutes: %v", name, err)
		}
	}
	s.startup = time.Since(t0)
	return s, nil
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM and waits (SIGKILL after 30 s).
func (s *server) stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		s.done <- err
	case <-time.After(30 * time.Second):
		s.kill()
		return fmt.Errorf("%s did not stop within 30s of SIGTERM", s.name)
	}
	s.logf.Close()
	return nil
}

// kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	err := <-s.done
	s.done <- err
	s.logf.Close()
}

// memory is a process's resident memory, from /proc/PID/status, in bytes.
type memory struct{ rss, anon, file int64 }

func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	var m memory
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.rss = kb << 10
		case "RssAnon:":
			m.anon = kb << 10
		case "RssFile:":
			m.file = kb << 10
		}
	}
	if m.rss == 0 {
		return m, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return m, nil
}

func mb(b int64) string { return strconv.FormatFloat(float64(b)/(1<<20), 'f', 1, 64) }

// cpuTime returns the CPU time (user + system) a process has used, from
// /proc/PID/stat, at the clock tick's resolution (10 ms on Linux).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(utime+stime) * tick, nil
}

// childrenRSS returns the resident memory of pid's child processes (from
// /proc/PID/task/*/children) and how many there are.
func childrenRSS(pid int) (int64, int, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, 0, err
	}
	var total int64
	n := 0
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			child, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			m, err := readMemory(child)
			if err != nil {
				continue
			}
			total += m.rss
			n++
		}
	}
	return total, n, nil
}

// cpuTicks returns the machine's steal and total CPU time, in clock ticks,
// from the first line of /proc/stat. Steal is time the hypervisor gave this
// virtual machine's CPUs to others: no program here can answer during it.
func cpuTicks() (steal, total int64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	first, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(first))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		if i < 8 { // user nice system idle iowait irq softirq steal; guest time is inside user
			total += v
		}
		if i == 7 {
			steal = v
		}
	}
	return steal, total, true
}

// stealMeter measures the share of CPU time stolen over an interval.
type stealMeter struct {
	steal, total int64
	ok           bool
}

func startSteal() stealMeter {
	s, t, ok := cpuTicks()
	return stealMeter{s, t, ok}
}

// pct returns the stolen share since startSteal, in percent, or -1.
func (m stealMeter) pct() float64 {
	s, t, ok := cpuTicks()
	if !ok || !m.ok || t <= m.total {
		return -1
	}
	return 100 * float64(s-m.steal) / float64(t-m.total)
}
