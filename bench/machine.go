package main

import (
	"bufio"
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"strings"
)

// machine describes the computer a run measured: figures from a shared
// virtual machine mean little without it, so the table's header and the
// JSON carry it.
type machine struct {
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpuModel,omitempty"`
	Virtual   bool    `json:"virtual"` // the CPU reports a hypervisor
	MemoryGiB float64 `json:"memoryGiB,omitempty"`
	Kernel    string  `json:"kernel,omitempty"`
	// Load is the one-minute load average when the bench started: work
	// other than the bench's that shared the machine then.
	Load float64 `json:"loadAverage"`
	OS   string  `json:"os"`
	Arch string  `json:"arch"`
	Go   string  `json:"go"`
}

// describeMachine reads what Linux tells of the machine through read
// (os.ReadFile); on other systems, or where a file is missing, the fields
// it cannot fill stay empty.
func describeMachine(read func(string) ([]byte, error)) machine {
	m := machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, Go: runtime.Version()}
	if b, err := read("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			key, value, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			key, value = strings.TrimSpace(key), strings.TrimSpace(value)
			switch key {
			case "model name":
				if m.CPUModel == "" {
					m.CPUModel = value
				}
			case "flags":
				if strings.Contains(" "+value+" ", " hypervisor ") {
					m.Virtual = true
				}
			}
		}
	}
	if b, err := read("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64); err == nil {
					m.MemoryGiB = kb / (1 << 20)
				}
			}
		}
	}
	if b, err := read("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := read("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			m.Load, _ = strconv.ParseFloat(f[0], 64)
		}
	}
	return m
}

// String is the machine in a line: "2 CPUs (AMD EPYC, virtual), 23.5 GiB,
// Linux 6.18.44, linux/amd64, go1.26.0, load average 0.52 at the start".
func (m machine) String() string {
	cpu := fmt.Sprintf("%d CPUs", m.CPUs)
	var about []string
	if m.CPUModel != "" {
		about = append(about, m.CPUModel)
	}
	if m.Virtual {
		about = append(about, "virtual")
	}
	if len(about) > 0 {
		cpu += " (" + strings.Join(about, ", ") + ")"
	}
	parts := []string{cpu}
	if m.MemoryGiB > 0 {
		parts = append(parts, fmt.Sprintf("%.1f GiB", m.MemoryGiB))
	}
	if m.Kernel != "" {
		parts = append(parts, "Linux "+m.Kernel)
	}
	parts = append(parts, m.OS+"/"+m.Arch, m.Go, fmt.Sprintf("load average %.2f at the start", m.Load))
	return strings.Join(parts, ", ")
}
