package main

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/k8s-elector/elector/test/e2e/internal/controlplane"
	"github.com/k8s-elector/elector/test/e2e/internal/fleet"
)

// dist is the figures of repeated measurements.
type dist []float64

func (d dist) median() float64 {
	s := slices.Sorted(slices.Values(d))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (d dist) max() float64 { return slices.Max(d) }

// steady is the API load of one steady-state experiment, per minute.
type steady struct {
	leader   rates   // the leader alone
	follower rates   // each follower
	fleet    rates   // leader and 2 followers together
	watches  float64 // open watches per elector
}

// modeResult holds every figure of one mode.
type modeResult struct {
	firstLeader, coldStart dist // seconds
	firstLeaderUp          dist // from the first leader's first status to its is_leader:true
	shutdown               dist // SIGTERM to exit of a leader
	graceful, crash        map[time.Duration]dist
	delivery               dist                   // a lock write → the bench's watch, group of 3 at the default TTL (deliveries)
	idleWrite              dist                   // a Lease update's round trip from a process idle for a renew interval (idleWrites)
	crashPast              map[time.Duration]dist // crash failover less what was left of the lease at the SIGKILL
	crashReport            dist                   // from the new holder on the Lease watch to its is_leader:true
	steady                 map[time.Duration]steady
	memLeader, memFollower fleet.ProcMemory // idle; the follower with the larger VmRSS
	binarySize             int64
	load                   loadResult
	loadOne                loadResult         // with one connection
	big                    map[int]*bigResult // the elections of many candidates, by size
	scaleAllLead           time.Duration
	scaleRSS               int64
	scaleLost              int // terms started during the window: leadership lost and regained
	scalePerElection       rates
	scale                  *scaleResult  // the elections of several candidates; watch mode only
	scaleGroups            *scaleResult  // the same as one elector.Group per candidate; watch mode only
	groupOne               *scaleResult  // the elections in one elector.Group, one candidate each; watch mode only
	groupOneLimited        *scaleResult  // the same with a soft memory limit (GOMEMLIMIT)
	cmd                    commandResult // the command experiments
}

func (b *bench) result(mode string) *modeResult {
	r := b.res[mode]
	if r == nil {
		r = &modeResult{
			graceful:  map[time.Duration]dist{},
			crash:     map[time.Duration]dist{},
			crashPast: map[time.Duration]dist{},
			steady:    map[time.Duration]steady{},
			big:       map[int]*bigResult{},
		}
		b.res[mode] = r
	}
	return r
}

// refResult holds the figures of the reference program, plain client-go,
// which has no modes.
type refResult struct {
	size             int64
	mem              fleet.ProcMemory       // idle, as a leader alone
	leader           rates                  // API requests on leases of a leader alone, per minute, over its idle time
	crash, crashPast map[time.Duration]dist // as modeResult's
	graceful         dist                   // SIGTERM handover in a group of 3, at the default TTL
	big              map[int]*bigResult     // as modeResult's
	scale            *scaleResult           // the elections of several candidates
}

func newRefResult() refResult {
	return refResult{crash: map[time.Duration]dist{}, crashPast: map[time.Duration]dist{}, big: map[int]*bigResult{}}
}

// cell is one mode's figure in a row: v is what the ratio compares.
type cell struct {
	v    float64
	text string
}

// target is a row's target: its text, and a check of each mode's result.
type target struct {
	text  string
	check func(mode string, r *modeResult) (applies, ok bool)
}

type tableRow struct {
	metric string
	cells  map[string]string
	ref    string // the reference program's figure; "" for none
	ratio  string
	target string
}

type table struct {
	b    *bench
	rows []tableRow
}

// withRef sets the reference program's figure of the last row added; get
// returns false when it has none.
func (t *table) withRef(get func(r *refResult) (cell, bool)) {
	if c, ok := get(&t.b.ref); ok {
		t.rows[len(t.rows)-1].ref = c.text
	}
}

// add adds a row; get returns false when the mode has no figure for it.
func (t *table) add(metric string, get func(r *modeResult) (cell, bool), tg target) {
	t.addRow(metric, get, tg, true)
}

// addRow adds a row, with the ratio of the watch and poll figures if ratio is
// set.
func (t *table) addRow(metric string, get func(r *modeResult) (cell, bool), tg target, ratio bool) {
	row := tableRow{metric: metric, cells: map[string]string{}, ratio: "–", target: tg.text}
	vals := map[string]float64{}
	var verdicts []string
	for _, mode := range t.b.modes {
		r, ok := t.b.res[mode]
		if mode == modeWatch && !t.b.hasWatch {
			row.cells[mode] = "n/a"
			continue
		}
		if !ok {
			row.cells[mode] = "–"
			continue
		}
		c, ok := get(r)
		if !ok {
			row.cells[mode] = "–"
			continue
		}
		row.cells[mode], vals[mode] = c.text, c.v
		if tg.check != nil {
			if applies, pass := tg.check(mode, r); applies {
				mark := "✓"
				if !pass {
					mark = "✗"
				}
				verdicts = append(verdicts, mode+" "+mark)
			}
		}
	}
	w, wok := vals[modeWatch]
	p, pok := vals[modePoll]
	if ratio && wok && pok && w >= 0 && p > 0 {
		row.ratio = fmt.Sprintf("%.2f×", w/p)
	}
	if len(verdicts) > 0 {
		row.target += ": " + strings.Join(verdicts, ", ")
	}
	if row.target == "" {
		row.target = "–"
	}
	t.rows = append(t.rows, row)
}

func fmtSeconds(s float64) string {
	switch a := max(s, -s); {
	case a < 0.001:
		return fmt.Sprintf("%.0f µs", s*1e6)
	case a < 0.01:
		return fmt.Sprintf("%.2f ms", s*1e3)
	case a < 1:
		return fmt.Sprintf("%.0f ms", s*1e3)
	default:
		return fmt.Sprintf("%.2f s", s)
	}
}

func fmtMB(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

// fmtMemory formats VmRSS and its anonymous and file-backed parts.
func fmtMemory(m fleet.ProcMemory) string {
	return fmt.Sprintf("%s (RssAnon %s, RssFile %s)", fmtMB(m.RSS), fmtMB(m.Anon), fmtMB(m.File))
}

func distCell(d dist) (cell, bool) {
	if len(d) == 0 {
		return cell{}, false
	}
	if len(d) == 1 {
		return cell{d[0], fmtSeconds(d[0])}, true
	}
	return cell{d.median(), fmt.Sprintf("%s (max %s)", fmtSeconds(d.median()), fmtSeconds(d.max()))}, true
}

// twiceCell is twice distCell's figures: the floor of a handover from the
// deliveries of single writes (deliveries).
func twiceCell(d dist) (cell, bool) {
	two := make(dist, len(d))
	for i, v := range d {
		two[i] = 2 * v
	}
	return distCell(two)
}

func rateCell(v float64) cell {
	if v > -0.05 && v < 0.05 {
		v = 0 // no "-0.0" from noise
	}
	return cell{v, fmt.Sprintf("%.1f", v)}
}

// only returns a check that applies to the given modes.
func only(modes []string, ok func(r *modeResult) bool) func(string, *modeResult) (bool, bool) {
	return func(mode string, r *modeResult) (bool, bool) {
		if !slices.Contains(modes, mode) {
			return false, false
		}
		return true, ok(r)
	}
}

var (
	watchOnly = []string{modeWatch}
	pollOnly  = []string{modePoll}
	bothModes = []string{modeWatch, modePoll}
)

func reps(n int) string { return fmt.Sprintf("median (max) of %d", n) }

// rows builds the table.
func (b *bench) rows() *table {
	t := &table{b: b}
	t.add("time to first leader, fleet of 3, "+reps(b.firstReps),
		func(r *modeResult) (cell, bool) { return distCell(r.firstLeader) }, target{})
	t.add("  of which from the leader's first status (election only)",
		func(r *modeResult) (cell, bool) { return distCell(r.firstLeaderUp) }, target{})
	for _, ttl := range b.failoverTTL {
		bound := maxRetryWait(ttl)
		tg := target{
			text: fmt.Sprintf("poll ≤ 2.2×RP = %s", fmtSeconds(bound.Seconds())),
			check: only(pollOnly, func(r *modeResult) bool {
				return len(r.graceful[ttl]) > 0 && r.graceful[ttl].max() <= bound.Seconds()
			}),
		}
		if ttl == defaultTTL {
			tg = target{
				text: fmt.Sprintf("watch median ≤ 10 ms, max ≤ 100 ms; poll ≤ 2.2×RP = %s", fmtSeconds(bound.Seconds())),
				check: func(mode string, r *modeResult) (bool, bool) {
					d := r.graceful[ttl]
					if mode == modeWatch {
						return true, len(d) > 0 && d.median() <= 0.010 && d.max() <= 0.100
					}
					return true, len(d) > 0 && d.max() <= bound.Seconds()
				},
			}
		}
		t.add(fmt.Sprintf("graceful failover (SIGTERM → new leader), TTL %s, %s", ttl, reps(b.gracefulRep)),
			func(r *modeResult) (cell, bool) { return distCell(r.graceful[ttl]) }, tg)
		if ttl == defaultTTL {
			t.withRef(func(r *refResult) (cell, bool) { return distCell(r.graceful) })
			t.add(fmt.Sprintf("  its floor: 2 × a lock write → its delivery to a watch, median (max) of %d, fleet of 3", deliveryProbes),
				func(r *modeResult) (cell, bool) { return twiceCell(r.delivery) }, target{})
			t.add(fmt.Sprintf("  its floor from idle processes: 2 × a Lease update after %s idle, median (max) of %d", fmtSeconds(b.renewInterval(ttl).Seconds()), deliveryProbes),
				func(r *modeResult) (cell, bool) { return twiceCell(r.idleWrite) }, target{})
		}
	}
	for _, ttl := range b.failoverTTL {
		median := ttl - b.renewInterval(ttl)/2 + crashSlack
		most := ttl + crashSlack
		t.add(fmt.Sprintf("crash failover (SIGKILL at a random instant between renewals → another holds the Lease), TTL %s, %s", ttl, reps(b.crashReps)),
			func(r *modeResult) (cell, bool) { return distCell(r.crash[ttl]) },
			target{
				text: fmt.Sprintf("watch: median ≤ TTL − renew interval/2 + %s = %s, max ≤ TTL + %s = %s",
					fmtSeconds(crashSlack.Seconds()), fmtSeconds(median.Seconds()), fmtSeconds(crashSlack.Seconds()), fmtSeconds(most.Seconds())),
				check: only(watchOnly, func(r *modeResult) bool {
					d := r.crash[ttl]
					return len(d) > 0 && d.median() <= median.Seconds() && d.max() <= most.Seconds()
				}),
			})
		t.withRef(func(r *refResult) (cell, bool) { return distCell(r.crash[ttl]) })
		t.add("  of which after the lease ran out (TTL from the renewal before the SIGKILL)",
			func(r *modeResult) (cell, bool) { return distCell(r.crashPast[ttl]) }, target{})
		t.withRef(func(r *refResult) (cell, bool) { return distCell(r.crashPast[ttl]) })
	}

	for _, ttl := range b.steadyTTL {
		leader := func(r *modeResult) (rates, bool) {
			s, ok := r.steady[ttl]
			return s.leader, ok
		}
		follower := func(r *modeResult) (rates, bool) {
			s, ok := r.steady[ttl]
			return s.follower, ok
		}
		var lt target
		if ttl == defaultTTL {
			// Each rate counts whole requests in a window: it may be one
			// request high or low, which the check allows on both sides.
			q := time.Minute.Seconds() / b.window.Seconds()
			lt = target{
				text: "PUT ≤ 0.5 × plain client-go's leader alone (the reference program), ± one request a window",
				check: func(mode string, r *modeResult) (bool, bool) {
					ref := b.ref.leader.verbs["PUT"]
					if ref == 0 {
						return false, false
					}
					return true, r.steady[ttl].leader.verbs["PUT"]-q <= (ref+q)/2
				},
			}
			t.addRates(fmt.Sprintf("API req/min, leader, TTL %s", ttl), leader, target{}, lt)
			t.withRef(func(r *refResult) (cell, bool) { return rateCell(r.leader.total()), r.leader.verbs != nil })
		} else {
			t.addRates(fmt.Sprintf("API req/min, leader, TTL %s", ttl), leader, target{}, target{})
		}
		var ft target
		if ttl == defaultTTL {
			ft = target{text: "idle follower ≤ 2 (watch)", check: only(watchOnly, func(r *modeResult) bool {
				return r.steady[ttl].follower.total() <= 2
			})}
		}
		t.addRates(fmt.Sprintf("API req/min, each follower, TTL %s", ttl), follower, ft, target{})
		t.add(fmt.Sprintf("API req/min per elector, fleet of 3, TTL %s", ttl), func(r *modeResult) (cell, bool) {
			s, ok := r.steady[ttl]
			return rateCell(s.fleet.total() / 3), ok
		}, target{})
		t.add(fmt.Sprintf("  409 conflicts/min, whole fleet of 3, TTL %s", ttl), func(r *modeResult) (cell, bool) {
			s, ok := r.steady[ttl]
			return rateCell(s.fleet.conflicts), ok
		}, target{})
		t.add(fmt.Sprintf("  open lease watches per elector, TTL %s", ttl), func(r *modeResult) (cell, bool) {
			s, ok := r.steady[ttl]
			return cell{s.watches, fmt.Sprintf("%.2f", s.watches)}, ok
		}, target{})
	}

	idle := fmt.Sprintf("after ≥ %s idle, TTL %s", b.idle, defaultTTL)
	refMem := func(part func(fleet.ProcMemory) int64) func(r *refResult) (cell, bool) {
		return func(r *refResult) (cell, bool) {
			v := part(r.mem)
			return cell{float64(v), fmtMB(v)}, r.mem.RSS > 0
		}
	}
	t.add("idle RSS, leader, "+idle, func(r *modeResult) (cell, bool) {
		return cell{float64(r.memLeader.RSS), fmtMB(r.memLeader.RSS)}, r.memLeader.RSS > 0
	}, target{"≤ 20 MB", only(bothModes, func(r *modeResult) bool { return r.memLeader.RSS <= 20e6 })})
	t.withRef(refMem(func(m fleet.ProcMemory) int64 { return m.RSS }))
	t.add("idle RSS, follower (max of 2), "+idle, func(r *modeResult) (cell, bool) {
		return cell{float64(r.memFollower.RSS), fmtMB(r.memFollower.RSS)}, r.memFollower.RSS > 0
	}, target{"≤ 20 MB", only(bothModes, func(r *modeResult) bool { return r.memFollower.RSS <= 20e6 })})
	for _, p := range []struct {
		name string
		get  func(fleet.ProcMemory) int64
	}{
		{"RssAnon (anonymous: private, not reclaimable)", func(m fleet.ProcMemory) int64 { return m.Anon }},
		{"RssFile (file-backed: shared, reclaimable)", func(m fleet.ProcMemory) int64 { return m.File }},
	} {
		t.add("  of which "+p.name+", leader / follower", func(r *modeResult) (cell, bool) {
			l, f := p.get(r.memLeader), p.get(r.memFollower)
			return cell{float64(l), fmt.Sprintf("%.1f / %.1f MB", float64(l)/1e6, float64(f)/1e6)}, r.memLeader.RSS > 0
		}, target{})
		t.withRef(refMem(p.get))
	}
	t.add("binary size (stripped, CGO_ENABLED=0)", func(r *modeResult) (cell, bool) {
		return cell{float64(r.binarySize), fmtMB(r.binarySize)}, r.binarySize > 0
	}, target{"≤ 28 MB", only(bothModes, func(r *modeResult) bool { return r.binarySize <= 28e6 })})
	t.withRef(func(r *refResult) (cell, bool) { return cell{float64(r.size), fmtMB(r.size)}, r.size > 0 })
	t.add(fmt.Sprintf("cold start: exec → first 200 on GET /, %s", reps(3*b.firstReps)),
		func(r *modeResult) (cell, bool) { return distCell(r.coldStart) }, target{})
	t.add(fmt.Sprintf("shutdown of a leader: SIGTERM → exit, %s", reps(b.gracefulRep*len(b.failoverTTL))),
		func(r *modeResult) (cell, bool) { return distCell(r.shutdown) }, target{})

	conns := fmt.Sprintf("%d keep-alive conns, %s", b.loadConns, b.loadFor)
	t.add("GET / throughput, "+conns, func(r *modeResult) (cell, bool) {
		return cell{r.load.RPS, fmt.Sprintf("%.0f req/s", r.load.RPS)}, r.load.RPS > 0
	}, target{})
	t.add("GET / latency p50 (client side)", func(r *modeResult) (cell, bool) {
		return cell{r.load.P50.Seconds(), fmtSeconds(r.load.P50.Seconds())}, r.load.RPS > 0
	}, target{})
	t.add("GET / latency p99 (client side)", func(r *modeResult) (cell, bool) {
		return cell{r.load.P99.Seconds(), fmtSeconds(r.load.P99.Seconds())}, r.load.RPS > 0
	}, target{"< 1 ms", only(bothModes, func(r *modeResult) bool { return r.load.RPS > 0 && r.load.P99 < time.Millisecond })})
	t.add(fmt.Sprintf("GET / with 1 connection, %s: throughput, p99", b.loadOneFor), func(r *modeResult) (cell, bool) {
		l := r.loadOne
		return cell{l.P99.Seconds(), fmt.Sprintf("%.0f req/s, %s", l.RPS, fmtSeconds(l.P99.Seconds()))}, l.RPS > 0
	}, target{})

	lib := fmt.Sprintf("scale: %d elections in 1 process (library), TTL %s", b.elections, defaultTTL)
	t.add(lib+", time until all lead", func(r *modeResult) (cell, bool) {
		return cell{r.scaleAllLead.Seconds(), fmtSeconds(r.scaleAllLead.Seconds())}, r.scaleAllLead > 0
	}, target{})
	t.add(lib+", RSS", func(r *modeResult) (cell, bool) {
		return cell{float64(r.scaleRSS), fmtMB(r.scaleRSS)}, r.scaleRSS > 0
	}, target{})
	t.add(lib+", leaderships lost and regained in the window", func(r *modeResult) (cell, bool) {
		return cell{float64(r.scaleLost), fmt.Sprint(r.scaleLost)}, r.scaleRSS > 0
	}, target{})
	t.addRates(lib+", API req/min per election", func(r *modeResult) (rates, bool) {
		return r.scalePerElection, r.scaleRSS > 0
	}, target{}, target{})

	for _, n := range b.candidates {
		b.bigRows(t, n)
	}
	b.scaleRows(t)
	b.commandRows(t)
	return t
}

// bigRows adds the rows of the election of n candidates.
func (b *bench) bigRows(t *table, n int) {
	big := fmt.Sprintf("scale: 1 election, %d candidates, TTL %s", n, defaultTTL)
	of := func(get func(*bigResult) (cell, bool)) func(*modeResult) (cell, bool) {
		return func(r *modeResult) (cell, bool) {
			if x := r.big[n]; x != nil {
				return get(x)
			}
			return cell{}, false
		}
	}
	ref := func(get func(*bigResult) (cell, bool)) {
		t.withRef(func(r *refResult) (cell, bool) {
			if x := r.big[n]; x != nil {
				return get(x)
			}
			return cell{}, false
		})
	}
	failover := func(x *bigResult) (cell, bool) { return distCell(x.failover) }
	t.add(fmt.Sprintf("%s, graceful failover, %s", big, reps(b.bigReps)), of(failover), target{
		text: "median ≤ 10 ms (watch)",
		check: only(watchOnly, func(r *modeResult) bool {
			x := r.big[n]
			return x != nil && len(x.failover) > 0 && x.failover.median() <= 0.010
		}),
	})
	ref(failover)
	t.add(fmt.Sprintf("  its floor: 2 × a lock write → its delivery to a watch, median (max) of %d", deliveryProbes),
		of(func(x *bigResult) (cell, bool) { return twiceCell(x.delivery) }), target{})
	fromRelease := func(x *bigResult) (cell, bool) { return distCell(x.fromRelease) }
	t.add(fmt.Sprintf("%s, the release → the new holder, on the bench's watch of the Lease, %s", big, reps(b.bigReps)), of(fromRelease), target{})
	ref(fromRelease)
	// Polling adds nothing to a handover: its figure is noise around 0, and
	// a ratio to it means nothing.
	// Requests on leases: the lock's, and k8s-elector's candidate Leases.
	perHandover := func(x *bigResult) (cell, bool) {
		if len(x.burst) == 0 {
			return cell{}, false
		}
		var tot, conf dist
		for _, r := range x.burst {
			tot, conf = append(tot, r.total()), append(conf, r.conflicts)
		}
		return cell{tot.median(), fmt.Sprintf("%.0f (%.0f)", tot.median(), conf.median())}, true
	}
	t.addRow(fmt.Sprintf("%s, API requests per graceful failover (409s), median of %d", big, b.bigReps), of(perHandover), target{}, false)
	ref(perHandover)
	lockWrites := func(x *bigResult) (cell, bool) {
		if len(x.lockWrites) == 0 {
			return cell{}, false
		}
		return cell{x.lockWrites.median(), fmt.Sprintf("%.0f (max %.0f)", x.lockWrites.median(), x.lockWrites.max())}, true
	}
	t.addRow(fmt.Sprintf("%s, lock writes per graceful failover (409s included), median (max) of %d", big, b.bigReps), of(lockWrites), target{
		text: "≤ 3 (watch)",
		check: only(watchOnly, func(r *modeResult) bool {
			x := r.big[n]
			return x != nil && len(x.lockWrites) > 0 && x.lockWrites.max() <= 3
		}),
	}, false)
	ref(lockWrites)
	t.add(fmt.Sprintf("%s, handover to a stopped successor: from the request → another leads, %s", big, reps(b.bigReps)),
		of(func(x *bigResult) (cell, bool) { return distCell(x.passedOverReq) }), target{})
	t.add(fmt.Sprintf("%s, handover to a stopped successor: the release → another leads, %s", big, reps(b.bigReps)),
		of(func(x *bigResult) (cell, bool) { return distCell(x.passedOver) }), target{
			text: fmt.Sprintf("≤ window + 50 ms = %s (watch)", fmtSeconds((successorWindow + 50*time.Millisecond).Seconds())),
			check: only(watchOnly, func(r *modeResult) bool {
				x := r.big[n]
				return x != nil && len(x.passedOver) > 0 && x.passedOver.max() <= (successorWindow+50*time.Millisecond).Seconds()
			}),
		})
	extra := float64(n - 3)
	fleet := func(x *bigResult) (cell, bool) {
		v := x.fleet.total()
		return cell{v, fmt.Sprintf("%.1f (%.2f)", v, v/float64(n))}, x.fleet.verbs != nil
	}
	t.add(big+", API req/min, whole fleet (per candidate)", of(fleet), target{
		text: fmt.Sprintf("≤ fleet of 3 + 2 × %d (watch)", int(extra)),
		check: func(mode string, r *modeResult) (bool, bool) {
			s, ok := r.steady[defaultTTL]
			x := r.big[n]
			if mode != modeWatch || !ok || x == nil || x.fleet.verbs == nil {
				return false, false // needs both experiments
			}
			return true, x.fleet.total() <= s.fleet.total()+2*extra
		},
	})
	ref(fleet)
}

// joinInts lists ns as "50, 500".
func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// addRates adds a row with the total of some rates and one row per verb
// seen in any mode.
func (t *table) addRates(metric string, get func(*modeResult) (rates, bool), total, verb target) {
	t.add(metric, func(r *modeResult) (cell, bool) {
		x, ok := get(r)
		return rateCell(x.total()), ok
	}, total)
	verbs := map[string]bool{}
	for _, r := range t.b.res {
		if x, ok := get(r); ok {
			for v, n := range x.verbs {
				if n >= 0.05 || n <= -0.05 {
					verbs[v] = true
				}
			}
		}
	}
	for _, v := range slices.Sorted(maps.Keys(verbs)) {
		tg := target{}
		if v == "PUT" {
			tg = verb
		}
		t.add("  · "+verbName(v), func(r *modeResult) (cell, bool) {
			x, ok := get(r)
			return rateCell(x.verbs[v]), ok
		}, tg)
	}
}

// render writes the table as an aligned markdown table.
func (t *table) render() string {
	// The reference program's column, only if it has a figure.
	ref := slices.ContainsFunc(t.rows, func(r tableRow) bool { return r.ref != "" })
	head := append([]string{"metric"}, t.b.modes...)
	if ref {
		head = append(head, refColumn)
	}
	head = append(head, "ratio "+ratioName(t.b.modes), "target")
	lines := [][]string{head}
	for _, r := range t.rows {
		l := []string{r.metric}
		for _, m := range t.b.modes {
			l = append(l, r.cells[m])
		}
		if ref {
			l = append(l, cmp.Or(r.ref, "–"))
		}
		lines = append(lines, append(l, r.ratio, r.target))
	}
	width := make([]int, len(head))
	for _, l := range lines {
		for i, c := range l {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	line := func(l []string) {
		for i, c := range l {
			pad := width[i] - utf8.RuneCountInString(c)
			if i > 0 && i < len(l)-1 {
				fmt.Fprintf(&b, "| %s%s ", strings.Repeat(" ", pad), c) // figures right-aligned
			} else {
				fmt.Fprintf(&b, "| %s%s ", c, strings.Repeat(" ", pad))
			}
		}
		b.WriteString("|\n")
	}
	line(lines[0])
	for i, w := range width {
		if i > 0 && i < len(width)-1 {
			fmt.Fprintf(&b, "|%s:", strings.Repeat("-", w+1))
		} else {
			fmt.Fprintf(&b, "|%s", strings.Repeat("-", w+2))
		}
	}
	b.WriteString("|\n")
	for _, l := range lines[1:] {
		line(l)
	}
	return b.String()
}

func ratioName(modes []string) string {
	if slices.Contains(modes, modeWatch) && slices.Contains(modes, modePoll) {
		return "watch/poll"
	}
	return ""
}

// refColumn heads the reference program's column.
const refColumn = "client-go"

type report struct{ text, markdown string }

// report renders the header, the table and the footer.
func (b *bench) report() report {
	var h strings.Builder
	kind := "full run"
	if b.quick {
		kind = "quick run"
	}
	fmt.Fprintf(&h, "## k8s-elector benchmark: %s, %s, took %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"),
		kind, time.Since(b.began).Round(time.Second))
	fmt.Fprintf(&h, "- command: `cd test/e2e && go run ./cmd/bench %s`\n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(&h, "- machine: %s; load average %s at the start, %s at the end (other work on the host skews the figures)\n",
		machine(), b.loadStart, loadAvg())
	server := "unknown version"
	if v, err := b.client.Discovery().ServerVersion(); err == nil {
		server = v.GitVersion
	}
	if dir := os.Getenv(controlplane.BinDirEnv); strings.Contains(server, "$Format") && dir != "" {
		// Built from source without version stamping: the cache names it.
		server = filepath.Base(dir)
	}
	where := "local control plane (kube-apiserver and etcd on loopback, envtest)"
	if b.kubecfg != "" && !strings.Contains(b.kubecfg, "k8s-elector-controlplane-") {
		where = "the cluster of " + b.kubecfg
	}
	fmt.Fprintf(&h, "- API server: kube-apiserver %s, %s\n", server, where)
	watch := "yes"
	if !b.hasWatch {
		watch = "no"
	}
	fmt.Fprintf(&h, "- binary: %s (%s), has -watch: %s\n", b.binary, fmtMB(b.result(b.active()[0]).binarySize), watch)
	fmt.Fprintf(&h, "- modes: watch = `-watch=true` (watch-driven election), poll = `-watch=false` (client-go polling); RP = retry period = TTL/6\n")
	if slices.Contains(b.modes, modeWatch) && !b.hasWatch {
		fmt.Fprintf(&h, "- watch: n/a (binary has no -watch flag)\n")
	}
	for _, w := range b.modeWarnings() {
		fmt.Fprintf(&h, "- **warning**: %s\n", w)
	}
	h.WriteString("\n")

	crashLag := ""
	var lags []string
	for _, mode := range b.active() {
		if r, ok := b.res[mode]; ok && len(r.crashReport) > 0 {
			lags = append(lags, fmt.Sprintf("%s (%s)", fmtSeconds(r.crashReport.median()), mode))
		}
	}
	if len(lags) > 0 {
		crashLag = " For k8s-elector, the new leader's is_leader:true on GET /watch arrived a median of " + strings.Join(lags, ", ") + " after the Lease event (negative: before)."
	}
	var f strings.Builder
	f.WriteString("\nHow each figure is measured:\n\n")
	notes := []string{
		"Times come from each elector's own GET /watch stream (Server-Sent Events, one per change of leadership), read by the bench on loopback: an elector is leader at the moment its is_leader:true event arrives. Crash failovers are timed on the Lease instead (below).",
		"Time to first leader: a fresh election; from starting the first of 3 processes to the first is_leader:true; 'election only' starts at the leader's own first answer to GET /. Cold start: from exec of one process to its first 200 on GET / (polled every 2 ms); the mode plays no part before the first answer unless the binary does mode-specific work before it serves HTTP, so a difference between the columns is noise from the host.",
		"Graceful failover: a group of 3 agrees on a leader, idles a retry period (at least 1 s), the bench sends the leader SIGTERM (it releases the lock) and times until another elector reports is_leader:true; a fresh follower then replaces the old leader.",
		"Crash failover: the same group, after the SIGTERM repetitions, and for the client-go column a group of 3 reference programs. The bench watches the Lease itself (admin client) and times from the SIGKILL to the arrival of another holder on that watch: the same detection for both, as the reference program has no HTTP." + crashLag + " A follower counts the lease from the last renewal it saw, so the failover is the lease less the time from that renewal to the kill, plus the follower's own delay: the SIGKILL falls at a uniformly random instant in [0, RP) after a renewal arrives on the bench's watch, never at a fixed delay, which would measure one phase of the renewal cycle. With the watch the follower's delay is TTL/50 (the drift margin) and a write, so the expected median is TTL − RP/2 + TTL/50 and a little; polling waits for its next jittered retry (RP to 2.2×RP), counting the lease from the poll that first saw the renewal. 'After the lease ran out' is the failover less what was left of the lease at the kill (TTL − time since the renewal), which takes out the random phase.",
		fmt.Sprintf("API requests: kube-apiserver's own counter apiserver_request_total{resource=%q} from GET /metrics (admin client), difference over a %s window, per minute, all response codes. The counter is global and not per client, so every experiment runs alone, and: baseline = a window without any elector (the API server's own lease renewals; %.1f/min here); leader = window with the leader alone − baseline; each follower = (window with leader + 2 followers − leader-alone window) / 2; per elector = (fleet window − baseline) / 3. A WATCH is counted when it ends (client-go ends a watch after 5–10 min), so an open watch appears in 'open lease watches' (apiserver_longrunning_requests) rather than in the rate. Differences of small counts are noisy by about ±1 request per window.", lockResource, b.window, b.baseline.total()),
		fmt.Sprintf("Idle RSS: VmRSS from /proc/<pid>/status of the leader and followers of the TTL %s fleet after the steady-state windows (each elector ran ≥ %s). RssAnon and RssFile, from the same file, are its anonymous part (heap, stacks, the Go runtime: private, and reclaimable only by swapping) and its file-backed part (mostly the mapped binary: shared by every process that runs the same file, and dropped by the kernel under pressure and read back when needed); VmRSS = RssAnon + RssFile + RssShmem. The follower's parts are those of the follower with the larger VmRSS. MB = 10^6 bytes.", defaultTTL, b.idle),
		fmt.Sprintf("%s column: the reference program cmd/bench/internal/minimal, client-go's leaderelection with a LeaseLock on a coordination/v1 client from a kubeconfig and nothing else (no HTTP server, metrics, structured logging or watch), with k8s-elector's default timing (lease TTL, renew deadline TTL/3, RP TTL/6), built like k8s-elector. It has no modes. Crash failover: a group of 3 in an election of its own per TTL, which idles as the electors' groups do and is measured the same way; a fresh program replaces the killed one. Its followers compare the record with its times in whole seconds (client-go's LeaseLock), so one misses a renewal in the same second as the one before and counts the lease from the earlier one: its 'after the lease ran out' can be below zero, mostly at TTL 3s (RP 0.5 s). Idle RSS: one program alone (no other elector, no API window) in an election of its own at TTL %s, as leader, read as the electors' are after the same idle time. It is the floor that client-go sets for any elector built on it.", refColumn, defaultTTL),
		fmt.Sprintf("GET / load: %d goroutines, each with its own keep-alive connection and one request at a time (closed loop, so the elector is saturated), for %s after a 0.5 s warm-up, against the leader; a minimal HTTP/1.1 client measures each request. Placement: %s; the API server and etcd share the %d CPUs.", b.loadConns, b.loadFor, b.pin, numCPU()),
		fmt.Sprintf("Scale, library: one process (cmd/bench/internal/scaleworker, stripped) runs %d Electors (elector.WithRESTConfig, one candidate each, WithWatch per mode) in one namespace; RSS and requests per election over a %s window once all lead.", b.elections, b.window),
		fmt.Sprintf("Scale, candidates: %s k8s-elector processes in one election at TTL %s (the first size in every mode, the others in watch mode only); API load of the whole fleet over a %s window, then SIGTERM failovers of the leader, then handovers (POST /resign?to=) to a follower stopped with SIGSTOP just before, timed from the request to another member's is_leader:true. Requests per failover: those counted from just before the SIGTERM to %s after it, less %s of the fleet's steady rate and the baseline (so ± a few from noise), with the 409 Conflict answers among them. The %s column: as many reference programs in one election, SIGTERM of the holder (it releases the Lease), timed on the bench's watch of the Lease to another holder, and counted the same way; its graceful failover at TTL %s is a group of 3.", joinInts(b.candidates), defaultTTL, b.window, burstWindow, burstWindow, refColumn, defaultTTL),
		"Targets are those of the performance issues; ✓/✗ check the max of repeated measurements unless the target names the median, and 2.2×RP is client-go's longest jittered retry wait.",
	}
	notes = slices.Insert(notes, len(notes)-1, b.commandNotes()...)
	notes = slices.Insert(notes, len(notes)-1, b.scaleNotes()...)
	if d := b.writeRTT; len(d) > 0 {
		notes = slices.Insert(notes, len(notes)-1, fmt.Sprintf("The floor of a graceful handover: it is two Lease writes, the release and the successor's acquisition, with a watch delivery between them. A Lease update's round trip from the bench's own client, one after another, took %s median (max %s) of %d. The rows 'its floor' time a write of an annotation of the bench's on the lock object itself, from its request to its arrival on the bench's watch, while the candidates watch the object too (200 ms apart, from the bench, which is busy: a write from a process idle since its last renewal takes longer), and double it.", fmtSeconds(d.median()), fmtSeconds(d.max()), len(d)))
	}
	for _, n := range notes {
		fmt.Fprintf(&f, "- %s\n", n)
	}
	s := h.String() + b.rows().render() + f.String()
	return report{text: s, markdown: s}
}

func numCPU() int {
	n := 0
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if strings.HasPrefix(line, "processor") {
				n++
			}
		}
	}
	return n
}

// verbName names the verbs of apiserver_request_total, which are HTTP
// methods for writes, after the API operations.
func verbName(v string) string {
	switch v {
	case "POST":
		return "POST (create)"
	case "PUT":
		return "PUT (update)"
	case "PATCH":
		return "PATCH (patch)"
	}
	return v
}

// modeWarnings checks that each column ran in the mode it is labelled with,
// by the lease watches the API server saw open: an elector in watch mode
// holds one, a polling elector none.
func (b *bench) modeWarnings() []string {
	w := append(b.commandWarnings(), b.scaleWarnings()...)
	for _, mode := range b.active() {
		for _, ttl := range b.steadyTTL {
			s, ok := b.res[mode].steady[ttl]
			switch {
			case !ok:
			case mode == modePoll && s.watches >= 0.5:
				w = append(w, fmt.Sprintf("the poll column is not plain polling: at TTL %s the API server saw %.2f open lease watches per elector (the binary watches without -watch=false, or ignores it)", ttl, s.watches))
			case mode == modeWatch && s.watches < 0.5:
				w = append(w, fmt.Sprintf("the watch column did not watch: at TTL %s the API server saw %.2f open lease watches per elector", ttl, s.watches))
			}
		}
	}
	return w
}
