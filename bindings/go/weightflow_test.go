package weightflow

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestLoadedLibraryMatchesTheHeader(t *testing.T) {
	if abiErr != nil {
		t.Fatal(abiErr)
	}
	if ABIVersion() < 2 {
		t.Fatalf("ABI %d, this binding was written for 2 (streams)", ABIVersion())
	}
	if parts := strings.Split(Version(), "."); len(parts) != 3 {
		t.Fatalf("version %q is not MAJOR.MINOR.PATCH", Version())
	}
}

func TestStatusNamesComeFromTheLibrary(t *testing.T) {
	cases := map[Status]string{
		StatusOK:                 "WF_STATUS_OK",
		StatusInvalidArgument:    "WF_STATUS_INVALID_ARGUMENT",
		StatusUnsupportedVersion: "WF_STATUS_UNSUPPORTED_VERSION",
		Status(9999):             "WF_STATUS_UNKNOWN",
	}
	for s, want := range cases {
		if s.String() != want {
			t.Errorf("%d: %q, want %q", uint32(s), s.String(), want)
		}
	}
}

func TestOpeningAMissingBundleIsAnErrorWithAStatus(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.wfb")
	d, err := Open(path, &Options{Threads: 1})
	if d != nil || err == nil {
		t.Fatalf("Open(%s) = %v, %v", path, d, err)
	}
	var we *Error
	if !errors.As(err, &we) {
		t.Fatalf("%T is not *weightflow.Error", err)
	}
	// IO from a library with the runtime; NOT_BUILT_IN from one without. Either names the path.
	if we.Status != StatusIO && we.Status != StatusNotBuiltIn {
		t.Fatalf("status %s: %s", we.Status, we.Message)
	}
	if !strings.Contains(we.Message, path) {
		t.Fatalf("message %q does not name %s", we.Message, path)
	}
}

// fixture is what scripts/test-bindings.sh writes into $WF_FIXTURE_DIR: a bundle, a window and the Rust
// runtime's score of it.
type fixture struct {
	bundle string
	rows   []float32
	nCols  int
	want   struct {
		Seed    uint64  `json:"seed"`
		PValue  float64 `json:"p_value"`
		IsShift bool    `json:"is_shift"`
	}
}

func loadFixture(t *testing.T) *fixture {
	dir := os.Getenv("WF_FIXTURE_DIR")
	if dir == "" {
		t.Fatal("WF_FIXTURE_DIR is unset: run the bindings' tests through scripts/test-bindings.sh, which writes the fixture bundle with the Rust runtime")
	}
	f := &fixture{bundle: filepath.Join(dir, "bundle.wfb")}
	raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &f.want); err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(filepath.Join(dir, "window.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	records, err := csv.NewReader(file).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range records {
		f.nCols = len(rec)
		for _, v := range rec {
			x, err := strconv.ParseFloat(v, 32)
			if err != nil {
				t.Fatal(err)
			}
			f.rows = append(f.rows, float32(x))
		}
	}
	return f
}

func TestScoreMatchesTheRustRuntime(t *testing.T) {
	f := loadFixture(t)
	d, err := Open(f.bundle, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Info().NFeatures != f.nCols {
		t.Fatalf("bundle takes %d features, the window has %d", d.Info().NFeatures, f.nCols)
	}
	s, err := d.Score(f.rows, f.nCols, f.want.Seed)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(s.PValue-f.want.PValue) > 1e-6 || s.IsShift != f.want.IsShift {
		t.Fatalf("p = %v shift = %v, the Rust runtime gave p = %v shift = %v", s.PValue, s.IsShift, f.want.PValue, f.want.IsShift)
	}
	w, err := d.Generate(3, 5)
	if err != nil || len(w) != 3*d.Info().NParams {
		t.Fatalf("Generate: %d values, %v", len(w), err)
	}
}

func TestBadWindowsAreRefused(t *testing.T) {
	f := loadFixture(t)
	d, err := Open(f.bundle, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	nan := append([]float32(nil), f.rows...)
	nan[0] = float32(math.NaN())
	for name, call := range map[string]func() error{
		"NaN":          func() error { _, err := d.Score(nan, f.nCols, 0); return err },
		"wrong width":  func() error { _, err := d.Score(f.rows[:f.nCols+1], f.nCols+1, 0); return err },
		"empty window": func() error { _, err := d.Score(nil, f.nCols, 0); return err },
	} {
		var we *Error
		if err := call(); !errors.As(err, &we) || we.Status != StatusInvalidArgument {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestGoroutinesScoreOneDetectorLikeOne(t *testing.T) {
	f := loadFixture(t)
	d, err := Open(f.bundle, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	want := make([]Score, 16)
	for i := range want {
		if want[i], err = d.Score(f.rows, f.nCols, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]Score, len(want))
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < len(got); i += 8 {
				got[i], _ = d.Score(f.rows, f.nCols, uint64(i))
			}
		}(g)
	}
	wg.Wait()
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("seed %d: %+v concurrently, %+v sequentially", i, got[i], want[i])
		}
	}
	d.Close()
	if _, err := d.Score(f.rows, f.nCols, 0); err != ErrClosed {
		t.Fatalf("after Close: %v", err)
	}
	d.Close()
}

func TestAStreamScoresEachWindowLikeScoreWithSeedPlusIndex(t *testing.T) {
	f := loadFixture(t)
	d, err := Open(f.bundle, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	n := len(f.rows) / f.nCols
	s, err := d.NewStream(n, n, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The fixture window twice, pushed in two uneven parts: windows 0 and 1 are that window, seeds 7 and 8.
	rows := append(append([]float32(nil), f.rows...), f.rows...)
	cut := (n / 2) * f.nCols
	got, err := s.Push(rows[:cut], f.nCols)
	if err != nil || len(got) != 0 {
		t.Fatalf("first part: %v, %v", got, err)
	}
	if got, err = s.Push(rows[cut:], f.nCols); err != nil || len(got) != 2 {
		t.Fatalf("second part: %v, %v", got, err)
	}
	for k, w := range got {
		want, err := d.Score(f.rows, f.nCols, 7+uint64(k))
		if err != nil {
			t.Fatal(err)
		}
		if w.Index != uint64(k) || w.EndRow != uint64((k+1)*n) || w.Score != want {
			t.Errorf("window %d: %+v, Score gives %+v", k, w, want)
		}
	}
	if _, err := d.NewStream(n+1, 1, 0); err == nil {
		t.Error("an uncalibrated window size was accepted")
	}
	d.Close()
	if _, err := s.Push(f.rows, f.nCols); err != ErrClosed {
		t.Fatalf("after the detector's Close: %v", err)
	}
}

func TestTheCUDAProviderRunsOrFailsWithoutFallingBack(t *testing.T) {
	f := loadFixture(t)
	var e *Error
	if _, err := Open(f.bundle, &Options{Provider: 7}); !errors.As(err, &e) || e.Status != StatusInvalidArgument {
		t.Fatalf("an unknown provider: %v", err)
	}
	// The fixture stores its pool: open only reads and scoring runs on the CPU; generation builds the session.
	d, err := Open(f.bundle, &Options{Provider: ProviderCUDA})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Score(f.rows, f.nCols, f.want.Seed); err != nil {
		t.Fatal(err)
	}
	// An onnxruntime with the CUDA provider and a GPU generates; any other must say so, not use the CPU.
	if _, err := d.Generate(2, 0); err != nil {
		if !errors.As(err, &e) || e.Status != StatusOnnxruntime || !strings.Contains(e.Message, "CUDA") {
			t.Fatalf("Generate on CUDA: %v", err)
		}
	}
}
