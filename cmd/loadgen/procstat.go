package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on every Linux
// the kernel's ABI allows userland to see (sysconf(_SC_CLK_TCK)).
const clockTicks = 100

// parseStatCPU returns utime+stime in seconds from the contents of /proc/<pid>/stat.
// The command name (field 2) is in parentheses and may hold spaces and parentheses, so
// fields are counted from the last ')'.
func parseStatCPU(stat []byte) (float64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no command name in %q", truncate(stat))
	}
	f := strings.Fields(string(stat[i+1:]))
	// After the name: state is field 3, utime field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command name", len(f))
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: utime %q stime %q", f[11], f[12])
	}
	return float64(utime+stime) / clockTicks, nil
}

// parseStatusKB returns a "Key:   N kB" field of /proc/<pid>/status in bytes.
func parseStatusKB(status []byte, key string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(v), " ")
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || unit != "kB" {
			return 0, fmt.Errorf("status: %s: %q", key, v)
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("status: no %s", key)
}

func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// procCPU is a process's CPU seconds so far.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("cpu of %d: %w", pid, err)
	}
	return parseStatCPU(b)
}

// procMem is a process's resident set now and at its peak, in bytes.
func procMem(pid int) (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("memory of %d: %w", pid, err)
	}
	if rss, err = parseStatusKB(b, "VmRSS"); err != nil {
		return 0, 0, err
	}
	if peak, err = parseStatusKB(b, "VmHWM"); err != nil {
		return 0, 0, err
	}
	return rss, peak, nil
}

// parseMachineBusy returns the busy CPU time of the whole machine, in seconds, from the
// "cpu" line of /proc/stat: everything but idle and iowait (steal included: time the
// hypervisor gave to someone else is time this machine's processes did not get).
func parseMachineBusy(stat []byte) (float64, error) {
	sc := bufio.NewScanner(bytes.NewReader(stat))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 9 || f[0] != "cpu" {
			continue
		}
		var busy uint64
		for i, v := range f[1:9] {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/stat: %q", sc.Text())
			}
			if i != 3 && i != 4 { // idle, iowait
				busy += n
			}
		}
		return float64(busy) / clockTicks, nil
	}
	return 0, fmt.Errorf("/proc/stat: no cpu line")
}

// machineBusy is the machine's busy CPU seconds so far.
func machineBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("machine cpu: %w", err)
	}
	return parseMachineBusy(b)
}
