package record

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

func at(s string) metav1.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return metav1.NewTime(t)
}

// golden holds records exactly as client-go v0.17 wrote them into the
// annotation (seen against a real API server), with the record they mean.
var golden = []struct {
	name string
	wire string
	rec  resourcelock.LeaderElectionRecord
}{
	{
		name: "held",
		wire: `{"holderIdentity":"up-1","leaseDurationSeconds":3,"acquireTime":"2026-11-25T04:36:54Z","renewTime":"2026-11-25T04:36:58Z","leaderTransitions":0}`,
		rec: resourcelock.LeaderElectionRecord{
			HolderIdentity:       "up-1",
			LeaseDurationSeconds: 3,
			AcquireTime:          at("2026-11-25T04:36:54Z"),
			RenewTime:            at("2026-11-25T04:36:58Z"),
		},
	},
	{
		name: "released",
		wire: `{"holderIdentity":"","leaseDurationSeconds":1,"acquireTime":"2026-11-25T04:40:01Z","renewTime":"2026-11-25T04:40:01Z","leaderTransitions":7}`,
		rec: resourcelock.LeaderElectionRecord{
			LeaseDurationSeconds: 1,
			AcquireTime:          at("2026-11-25T04:40:01Z"),
			RenewTime:            at("2026-11-25T04:40:01Z"),
			LeaderTransitions:    7,
		},
	},
	{
		name: "zero times",
		wire: `{"holderIdentity":"pod-a","leaseDurationSeconds":15,"acquireTime":null,"renewTime":null,"leaderTransitions":2}`,
		rec: resourcelock.LeaderElectionRecord{
			HolderIdentity:       "pod-a",
			LeaseDurationSeconds: 15,
			LeaderTransitions:    2,
		},
	},
}

func TestEncodeGolden(t *testing.T) {
	for _, tc := range golden {
		t.Run(tc.name, func(t *testing.T) {
			if got := Encode(tc.rec); got != tc.wire {
				t.Errorf("Encode:\n got %s\nwant %s", got, tc.wire)
			}
		})
	}
}

func TestDecodeGolden(t *testing.T) {
	for _, tc := range golden {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.wire)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tc.rec, got); diff != "" {
				t.Errorf("Decode mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEncodeDropsSubSecondsAndNewFields(t *testing.T) {
	r := resourcelock.LeaderElectionRecord{
		HolderIdentity:       "a",
		LeaseDurationSeconds: 10,
		AcquireTime:          metav1.NewTime(time.Date(2026, 11, 25, 4, 36, 54, 999_000_000, time.FixedZone("X", 3600))),
		RenewTime:            metav1.NewTime(time.Date(2026, 11, 25, 4, 36, 58, 1, time.UTC)),
		Strategy:             "OldestEmulationVersion",
		PreferredHolder:      "b",
	}
	want := `{"holderIdentity":"a","leaseDurationSeconds":10,"acquireTime":"2026-11-25T03:36:54Z","renewTime":"2026-11-25T04:36:58Z","leaderTransitions":0}`
	if got := Encode(r); got != want {
		t.Errorf("Encode:\n got %s\nwant %s", got, want)
	}
}

func TestDecodeAcceptsNewerFields(t *testing.T) {
	got, err := Decode(`{"holderIdentity":"a","leaseDurationSeconds":10,"acquireTime":null,"renewTime":null,"leaderTransitions":1,"strategy":"","preferredHolder":""}`)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if got.HolderIdentity != "a" || got.LeaderTransitions != 1 {
		t.Errorf("got %+v, want holder a with 1 transition", got)
	}
}

func TestDecodeInvalid(t *testing.T) {
	for _, in := range []string{
		``,
		` `,
		`{`,
		`not json`,
		`"a string"`,
		`[]`,
		`42`,
		`{"holderIdentity":7}`,
		`{"leaseDurationSeconds":"10"}`,
		`{"leaseDurationSeconds":-1}`,
		`{"leaderTransitions":-3}`,
		`{"renewTime":"yesterday"}`,
		`{"holderIdentity":"a"}}`,
		`{"holderIdentity":"a"} {"holderIdentity":"b"}`,
	} {
		t.Run(in, func(t *testing.T) {
			_, err := Decode(in)
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Decode(%q) = %v, want an error wrapping ErrInvalid", in, err)
			}
		})
	}
}

// FuzzDecode checks that Decode never panics and that whatever it accepts
// survives an Encode/Decode round trip unchanged (times at second precision).
func FuzzDecode(f *testing.F) {
	for _, g := range golden {
		f.Add(g.wire)
	}
	f.Add(`{}`)
	f.Add(`null`)
	f.Add(`{"holderIdentity":"a","leaseDurationSeconds":-1}`)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Decode(s)
		if err != nil {
			return
		}
		again, err := Decode(Encode(r))
		if err != nil {
			t.Fatalf("Decode(Encode(%+v)): %v", r, err)
		}
		r.AcquireTime = metav1.NewTime(r.AcquireTime.Truncate(time.Second))
		r.RenewTime = metav1.NewTime(r.RenewTime.Truncate(time.Second))
		if !r.AcquireTime.Equal(&again.AcquireTime) || !r.RenewTime.Equal(&again.RenewTime) {
			t.Fatalf("times changed in round trip: %+v -> %+v", r, again)
		}
		r.AcquireTime, r.RenewTime = again.AcquireTime, again.RenewTime
		if diff := cmp.Diff(r, again); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
		}
	})
}
