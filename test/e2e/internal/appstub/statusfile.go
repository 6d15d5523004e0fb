package appstub

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"
	"time"
)

// Read is one read of a status file.
type Read struct {
	Start, End time.Time // the open began; the read had returned
	Raw        []byte
	Status     Status
	ModTime    time.Time // of the file read, from the open descriptor
	Absent     bool      // there was no file
	Err        error     // it could not be read, or did not hold the status JSON; nil if Absent
}

// FileReader reads status files, each in turn, every interval, and keeps
// every read.
type FileReader struct {
	interval time.Duration
	stop     chan struct{}
	done     chan struct{}

	mu         sync.Mutex
	files      []file
	reads      map[string][]Read
	iterations int
	maxGap     time.Duration
}

type file struct{ id, path string }

// ReadFiles starts reading, every interval, the files added with Add.
func ReadFiles(interval time.Duration) *FileReader {
	r := &FileReader{interval: interval, stop: make(chan struct{}), done: make(chan struct{}), reads: map[string][]Read{}}
	go r.run()
	return r
}

// Add reads the file at path, named id, from the next round on.
func (r *FileReader) Add(id, path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.files = append(r.files, file{id, path})
}

func (r *FileReader) run() {
	defer close(r.done)
	var last time.Time
	for {
		r.mu.Lock()
		files := slices.Clone(r.files)
		r.mu.Unlock()
		begin := time.Now()
		got := make([]Read, len(files))
		for i, f := range files {
			got[i] = readStatusFile(f.path)
		}
		r.mu.Lock()
		for i, f := range files {
			rs := r.reads[f.id]
			// A read like the one before shares its content: a file read
			// every millisecond changes only at handovers.
			if n := len(rs); n > 0 && got[i].Err == nil && rs[n-1].Err == nil && bytes.Equal(got[i].Raw, rs[n-1].Raw) {
				got[i].Raw, got[i].Status = rs[n-1].Raw, rs[n-1].Status
			}
			r.reads[f.id] = append(rs, got[i])
		}
		r.iterations++
		if !last.IsZero() {
			r.maxGap = max(r.maxGap, begin.Sub(last))
		}
		r.mu.Unlock()
		last = begin
		select {
		case <-r.stop:
			return
		case <-time.After(time.Until(begin.Add(r.interval))):
		}
	}
}

func readStatusFile(path string) (rd Read) {
	rd.Start = time.Now()
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		rd.End, rd.Absent = time.Now(), true
		return rd
	}
	if err != nil {
		rd.End, rd.Err = time.Now(), err
		return rd
	}
	defer f.Close()
	rd.Raw, err = io.ReadAll(f)
	// What was read was the file's content between Start and End.
	rd.End = time.Now()
	if err != nil {
		rd.Err = err
		return rd
	}
	if st, err := f.Stat(); err == nil {
		rd.ModTime = st.ModTime()
	}
	rd.Err = decodeStatus(rd.Raw, &rd.Status)
	return rd
}

// Stop stops reading and waits for the round under way.
func (r *FileReader) Stop() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

// Reads returns every read of the file named id so far, in order.
func (r *FileReader) Reads(id string) []Read {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reads[id])
}

// Stats returns how many rounds the reader made and the longest time
// between the beginnings of two.
func (r *FileReader) Stats() (iterations int, maxGap time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.iterations, r.maxGap
}
