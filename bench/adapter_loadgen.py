"""An HTTP load generator for the adapter benches, written in Go (standard library only) and built once.

A Python client on this 2-core machine would compete with the server for the interpreter and
add its own scheduling jitter to every latency; a Go client costs little CPU and measures
precisely. Open-loop mode sends at a fixed rate and times each request from its *scheduled*
start, so a slow server cannot hide its queueing (no coordinated omission); closed-loop mode
keeps N requests in flight to find the throughput ceiling. The binary is cached in
``~/.cache/gitopsd/bin/adapter-loadgen-<hash>/``, next to the harness binaries.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.binaries import cache_root, find_go

GO_SOURCE = r"""
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

type result struct {
	Requests  int            `json:"requests"`
	Errors    int            `json:"errors"`
	Statuses  map[string]int `json:"statuses"`
	Seconds   float64        `json:"seconds"`
	RPS       float64        `json:"rps"`
	OKRPS     float64        `json:"ok_rps"`
	P50ms     float64        `json:"p50_ms"`
	P90ms     float64        `json:"p90_ms"`
	P99ms     float64        `json:"p99_ms"`
	P999ms    float64        `json:"p999_ms"`
	MaxMs     float64        `json:"max_ms"`
	BytesMean float64        `json:"bytes_mean"`
	Dropped   int            `json:"dropped"`
	SecondP99 []float64      `json:"per_second_p99_ms"`
	Latencies []float64      `json:"latencies_ms,omitempty"`
	FirstErr  string         `json:"first_error,omitempty"`
	StartUnix float64        `json:"start_unix"`
	NewConns  int            `json:"new_connections"`
	Trace     []traced       `json:"trace,omitempty"`
}

// One request, for stall attribution: when it was due (ms after the start), how long it took,
// whether it had to open a connection (TCP + TLS handshake) and how long the handshake took.
type traced struct {
	At        float64 `json:"at_ms"`
	Ms        float64 `json:"ms"`
	NewConn   bool    `json:"new_conn,omitempty"`
	Handshake float64 `json:"handshake_ms,omitempty"`
}

type header []string

func (h *header) String() string     { return strings.Join(*h, ",") }
func (h *header) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	base := flag.String("base", "", "https://host:port")
	pathsFile := flag.String("paths", "", "file with one path per line, used round robin")
	rate := flag.Float64("rate", 0, "requests per second (open loop); 0 = closed loop")
	conc := flag.Int("concurrency", 32, "in-flight requests (closed loop) / max connections")
	dur := flag.Duration("duration", 10*time.Second, "how long")
	ca := flag.String("ca", "", "CA file")
	cert := flag.String("cert", "", "client cert")
	key := flag.String("key", "", "client key")
	var hdrs header
	flag.Var(&hdrs, "H", "header K: V (repeatable)")
	raw := flag.Bool("raw", false, "also output every latency")
	trace := flag.Bool("trace", false, "also output every request's timing and connection (new or reused)")
	warmup := flag.Duration("warmup", 0, "send this long first, unrecorded, on the same connections")
	flag.Parse()

	pathData, err := os.ReadFile(*pathsFile)
	if err != nil { panic(err) }
	var paths []string
	for _, l := range strings.Split(string(pathData), "\n") { if l != "" { paths = append(paths, l) } }

	tlsCfg := &tls.Config{}
	if *ca != "" {
		pool := x509.NewCertPool()
		pem, err := os.ReadFile(*ca)
		if err != nil { panic(err) }
		pool.AppendCertsFromPEM(pem)
		tlsCfg.RootCAs = pool
	}
	if *cert != "" {
		c, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil { panic(err) }
		tlsCfg.Certificates = []tls.Certificate{c}
	}
	tr := &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConns: *conc * 2, MaxIdleConnsPerHost: *conc * 2,
		MaxConnsPerHost: *conc, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	var mu sync.Mutex
	lat := make([]float64, 0, 1<<16)
	perSecond := map[int][]float64{}
	res := result{Statuses: map[string]int{}}
	var bytes int64
	begin := time.Now()
	start := begin.Add(*warmup) // what is recorded starts here
	do := func(i int, scheduled time.Time) {
		req, _ := http.NewRequest("GET", *base+paths[i%len(paths)], nil)
		for _, h := range hdrs {
			kv := strings.SplitN(h, ":", 2)
			req.Header.Add(strings.TrimSpace(kv[0]), strings.TrimSpace(kv[1]))
		}
		var newConn bool
		var hsStart time.Time
		var hs float64
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn:           func(i httptrace.GotConnInfo) { newConn = !i.Reused },
			TLSHandshakeStart: func() { hsStart = time.Now() },
			TLSHandshakeDone: func(tls.ConnectionState, error) {
				hs = float64(time.Since(hsStart).Microseconds()) / 1000.0
			},
		}))
		resp, err := client.Do(req)
		var n int64
		status := "error"
		if err == nil {
			n, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			status = fmt.Sprint(resp.StatusCode)
		}
		ms := float64(time.Since(scheduled).Microseconds()) / 1000.0
		if scheduled.Before(start) { return }
		mu.Lock()
		res.Requests++
		res.Statuses[status]++
		if err != nil || (resp != nil && resp.StatusCode != 200) {
			res.Errors++
			if res.FirstErr == "" { if err != nil { res.FirstErr = err.Error() } else { res.FirstErr = status } }
		}
		bytes += n
		lat = append(lat, ms)
		if newConn { res.NewConns++ }
		if *trace {
			at := float64(scheduled.Sub(start).Microseconds()) / 1000.0
			res.Trace = append(res.Trace, traced{at, ms, newConn, hs})
		}
		sec := int(scheduled.Sub(start).Seconds())
		perSecond[sec] = append(perSecond[sec], ms)
		mu.Unlock()
	}
	end := start.Add(*dur)
	var wg sync.WaitGroup
	if *rate > 0 {
		interval := time.Duration(float64(time.Second) / *rate)
		sem := make(chan struct{}, *conc*4)
		for i := 0; ; i++ {
			at := begin.Add(time.Duration(i) * interval)
			if at.After(end) { break }
			if d := time.Until(at); d > 0 { time.Sleep(d) }
			if time.Since(end) > 5*time.Second {
				// The server fell so far behind that sending the rest would only measure the
				// backlog: count what was never sent.
				res.Dropped = int(end.Sub(begin).Seconds() * *rate) - i
				break
			}
			sem <- struct{}{}
			wg.Add(1)
			go func(i int, at time.Time) { defer wg.Done(); do(i, at); <-sem }(i, at)
		}
	} else {
		var next int
		var nmu sync.Mutex
		for w := 0; w < *conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					nmu.Lock(); i := next; next++; nmu.Unlock()
					do(i, time.Now())
				}
			}()
		}
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	sort.Float64s(lat)
	q := func(p float64) float64 { if len(lat) == 0 { return 0 }; return lat[int(p*float64(len(lat)-1))] }
	res.RPS = float64(res.Requests) / res.Seconds
	res.OKRPS = float64(res.Statuses["200"]) / res.Seconds
	res.P50ms, res.P90ms, res.P99ms, res.P999ms = q(0.50), q(0.90), q(0.99), q(0.999)
	res.StartUnix = float64(start.UnixNano()) / 1e9
	if len(lat) > 0 { res.MaxMs = lat[len(lat)-1]; res.BytesMean = float64(bytes) / float64(len(lat)) }
	for sec := 0; sec < int(dur.Seconds()); sec++ {
		l := perSecond[sec]
		if len(l) == 0 { continue }
		sort.Float64s(l)
		res.SecondP99 = append(res.SecondP99, l[int(0.99*float64(len(l)-1))])
	}
	if *raw { res.Latencies = lat }
	json.NewEncoder(os.Stdout).Encode(res)
}
"""


def ensure_loadgen() -> Path:
    """The built load generator (built on first use, cached by source hash)."""
    digest = hashlib.sha256(GO_SOURCE.encode()).hexdigest()[:12]
    dest = cache_root() / "bin" / f"adapter-loadgen-{digest}" / "loadgen"
    if dest.exists():
        return dest
    go = find_go(("adapter-loadgen",))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "main.go").write_text(GO_SOURCE)
        (Path(tmp) / "go.mod").write_text("module loadgen\n\ngo 1.22\n")
        dest.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([go, "build", "-o", str(dest), "."], cwd=tmp, check=True, capture_output=True)
    return dest


@dataclass(frozen=True, slots=True)
class Target:
    base: str  # https://localhost:PORT
    ca: Path
    cert: Path | None = None
    key: Path | None = None
    headers: tuple[str, ...] = ()


def run(
    target: Target,
    paths: Sequence[str],
    *,
    rate: float = 0,
    duration: float = 10,
    concurrency: int = 32,
    nice: int | None = None,
    raw: bool = False,
    trace: bool = False,
    warmup: float = 0,
) -> dict[str, Any]:
    """Run the load generator; returns its JSON result."""
    binary = ensure_loadgen()
    with tempfile.NamedTemporaryFile("w", suffix=".paths", delete=False) as f:
        f.write("\n".join(paths) + "\n")
    args = [
        str(binary),
        f"-base={target.base}",
        f"-paths={f.name}",
        f"-rate={rate}",
        f"-duration={duration}s",
        f"-concurrency={concurrency}",
        f"-ca={target.ca}",
    ]
    if raw:
        args.append("-raw")
    if trace:
        args.append("-trace")
    if warmup:
        args.append(f"-warmup={warmup}s")
    if target.cert and target.key:
        args += [f"-cert={target.cert}", f"-key={target.key}"]
    for h in target.headers:
        args += ["-H", h]
    out = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=warmup + duration + 120,
        check=True,
        preexec_fn=(lambda: os.setpriority(os.PRIO_PROCESS, 0, nice)) if nice is not None else None,
    )
    Path(f.name).unlink(missing_ok=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result
