// Package weightflow scores windows of live inputs for harmful covariate shift with a weightflow bundle,
// through the library's C ABI (include/weightflow.h).
//
// Build against this checkout's library (cargo build --lib --features runtime) as is; against an installed one
// (scripts/install.sh), set CGO_CFLAGS/CGO_LDFLAGS from `pkg-config --cflags --libs weightflow`.
//
// A Detector is safe for concurrent use: many goroutines may Score and Generate at once. Close releases it;
// a finalizer releases a forgotten one, but call Close: the finalizer runs only when the GC decides to.
package weightflow

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: -L${SRCDIR}/../../target/debug -Wl,-rpath,${SRCDIR}/../../target/debug -lweightflow
#include <stdlib.h>
#include "weightflow.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Status is a wf_status code of the C ABI.
type Status uint32

// The status codes of include/weightflow.h (same numbers; the ABI only ever appends).
const (
	StatusOK                     Status = C.WF_STATUS_OK
	StatusInvalidArgument        Status = C.WF_STATUS_INVALID_ARGUMENT
	StatusNullPointer            Status = C.WF_STATUS_NULL_POINTER
	StatusPanic                  Status = C.WF_STATUS_PANIC
	StatusNotBuiltIn             Status = C.WF_STATUS_NOT_BUILT_IN
	StatusMisaligned             Status = C.WF_STATUS_MISALIGNED
	StatusNotABundle             Status = C.WF_STATUS_NOT_A_BUNDLE
	StatusBundleCorrupt          Status = C.WF_STATUS_BUNDLE_CORRUPT
	StatusUnsupportedVersion     Status = C.WF_STATUS_UNSUPPORTED_VERSION
	StatusIO                     Status = C.WF_STATUS_IO
	StatusOnnxruntimeUnavailable Status = C.WF_STATUS_ONNXRUNTIME_UNAVAILABLE
	StatusOnnxruntime            Status = C.WF_STATUS_ONNXRUNTIME
	StatusDetect                 Status = C.WF_STATUS_DETECT
)

// String is the code's name as the header spells it ("WF_STATUS_INVALID_ARGUMENT").
func (s Status) String() string { return C.GoString(C.wf_status_name(C.uint32_t(s))) }

// Error is a failed call: its status and the library's message.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("weightflow: %s: %s", e.Status, e.Message) }

// ErrClosed is returned by calls on a Detector after Close.
var ErrClosed = errors.New("weightflow: detector is closed")

// abiErr is set when the loaded library's ABI is older than the header this package was built against.
var abiErr error

func init() {
	if got := uint32(C.wf_abi_version()); got < C.WF_ABI_VERSION {
		abiErr = fmt.Errorf("weightflow: the loaded library has ABI %d, this package was built against %d",
			got, C.WF_ABI_VERSION)
	}
}

// ABIVersion is the loaded library's ABI version (wf_abi_version).
func ABIVersion() uint32 { return uint32(C.wf_abi_version()) }

// Version is the loaded library's version ("MAJOR.MINOR.PATCH").
func Version() string { return C.GoString(C.wf_version()) }

// takeError turns a failed call's status and owned wf_error into a Go error, releasing the wf_error.
func takeError(status C.wf_status, cerr *C.wf_error) error {
	e := &Error{Status: Status(status), Message: "(no detail)"}
	if cerr != nil {
		e.Message = C.GoString(C.wf_error_message(cerr))
		C.wf_error_free(cerr)
	}
	return e
}

// Options say how to open a bundle; the zero value means all defaults.
type Options struct {
	// OnnxruntimePath is the onnxruntime shared library; empty uses the ORT_DYLIB_PATH environment variable.
	OnnxruntimePath string
	// Threads is onnxruntime's intra-op thread count; 0 lets onnxruntime choose.
	Threads uint32
	// Provider is where onnxruntime runs the meta-model (generation, and the pool of a bundle that stores
	// none; scoring runs on the CPU either way). ProviderCUDA needs an onnxruntime with the CUDA provider
	// (the onnxruntime-gpu wheel) and fails rather than falling back to the CPU.
	Provider Provider
	// CUDADevice is the GPU of ProviderCUDA.
	CUDADevice uint32
}

// Provider is an onnxruntime execution provider (wf_detector_open_with_provider, ABI 3).
type Provider uint32

// The providers of include/weightflow.h.
const (
	ProviderCPU  Provider = C.WF_PROVIDER_CPU
	ProviderCUDA Provider = C.WF_PROVIDER_CUDA
)

// Info describes an opened bundle.
type Info struct {
	NFeatures, NClasses, NParams, EnsembleSize int
	WindowSizes                                []int
	BundleVersion, ABIVersion                  uint32
}

// Score is the verdict on one window.
type Score struct {
	PValue, Statistic, Threshold, Disagreement, EntropyP float64
	EnsembleSize                                         int
	IsShift                                              bool
}

// Detector is an opened bundle. Safe for concurrent use; Close it when done.
type Detector struct {
	mu   sync.RWMutex // Score/Generate hold it shared; Close exclusively, so no call races wf_detector_free
	ptr  *C.wf_detector
	info Info
}

// Open opens the bundle at path. opts may be nil.
func Open(path string, opts *Options) (*Detector, error) {
	if abiErr != nil {
		return nil, abiErr
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	o := C.wf_open_options_default()
	provider, device := ProviderCPU, uint32(0)
	if opts != nil {
		if opts.OnnxruntimePath != "" {
			cort := C.CString(opts.OnnxruntimePath)
			defer C.free(unsafe.Pointer(cort))
			o.onnxruntime_path = cort
		}
		o.threads = C.uint32_t(opts.Threads)
		provider, device = opts.Provider, opts.CUDADevice
	}
	var ptr *C.wf_detector
	var cerr *C.wf_error
	status := C.wf_detector_open_with_provider(cpath, &o, C.uint32_t(provider), C.uint32_t(device), &ptr, &cerr)
	if status != C.WF_STATUS_OK {
		return nil, takeError(status, cerr)
	}
	var ci C.wf_info
	if status := C.wf_detector_info(ptr, &ci, &cerr); status != C.WF_STATUS_OK {
		C.wf_detector_free(ptr)
		return nil, takeError(status, cerr)
	}
	d := &Detector{ptr: ptr, info: Info{
		NFeatures:     int(ci.n_features),
		NClasses:      int(ci.n_classes),
		NParams:       int(ci.n_params),
		EnsembleSize:  int(ci.ensemble_size),
		BundleVersion: uint32(ci.bundle_version),
		ABIVersion:    uint32(ci.abi_version),
	}}
	for _, s := range unsafe.Slice(ci.window_sizes, int(ci.n_window_sizes)) {
		d.info.WindowSizes = append(d.info.WindowSizes, int(s))
	}
	runtime.SetFinalizer(d, (*Detector).Close)
	return d, nil
}

// Info describes the bundle (copied at Open; valid after Close).
func (d *Detector) Info() Info { return d.info }

// Score scores one window: rows holds len(rows)/nCols raw inputs of nCols features each, row-major. The same
// bundle, rows and seed give the same score.
func (d *Detector) Score(rows []float32, nCols int, seed uint64) (Score, error) {
	if nCols <= 0 || len(rows)%nCols != 0 {
		return Score{}, &Error{StatusInvalidArgument, fmt.Sprintf("%d values are not rows of %d features", len(rows), nCols)}
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.ptr == nil {
		return Score{}, ErrClosed
	}
	var data *C.float
	if len(rows) > 0 {
		data = (*C.float)(unsafe.Pointer(&rows[0]))
	}
	var cs C.wf_score
	var cerr *C.wf_error
	status := C.wf_detector_score(d.ptr, data, C.size_t(len(rows)/nCols), C.size_t(nCols), C.uint64_t(seed), &cs, &cerr)
	runtime.KeepAlive(rows)
	if status != C.WF_STATUS_OK {
		return Score{}, takeError(status, cerr)
	}
	return scoreFrom(cs), nil
}

func scoreFrom(cs C.wf_score) Score {
	return Score{
		PValue:       float64(cs.p_value),
		Statistic:    float64(cs.statistic),
		Threshold:    float64(cs.threshold),
		Disagreement: float64(cs.disagreement),
		EntropyP:     float64(cs.entropy_p),
		EnsembleSize: int(cs.ensemble_size),
		IsShift:      bool(cs.is_shift),
	}
}

// Generate returns n classifiers' flat weights, n × Info().NParams values row-major, from seed.
func (d *Detector) Generate(n int, seed uint64) ([]float32, error) {
	if n <= 0 {
		return nil, &Error{StatusInvalidArgument, fmt.Sprintf("n is %d: generate at least one classifier", n)}
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.ptr == nil {
		return nil, ErrClosed
	}
	out := make([]float32, n*d.info.NParams)
	var data *C.float
	if len(out) > 0 {
		data = (*C.float)(unsafe.Pointer(&out[0]))
	}
	var cerr *C.wf_error
	status := C.wf_detector_generate(d.ptr, C.size_t(n), C.uint64_t(seed), data, C.size_t(len(out)), &cerr)
	if status != C.WF_STATUS_OK {
		return nil, takeError(status, cerr)
	}
	return out, nil
}

// Close releases the detector; later calls return ErrClosed. Closing twice is harmless.
func (d *Detector) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ptr != nil {
		C.wf_detector_free(d.ptr)
		d.ptr = nil
		runtime.SetFinalizer(d, nil)
	}
	return nil
}

// WindowScore is the verdict on one window of a Stream: window Index (from 0) holds stream rows
// [Index·stride, Index·stride + window) and completed when EndRow rows had arrived.
type WindowScore struct {
	Index, EndRow uint64
	Score         Score
}

// Stream is a sliding-window detector over a Detector (ABI 2): windows of a calibrated size every stride rows,
// window k scored like Score with seed+k; each window's false-alarm rate is the bundle's alpha. Calls on one
// Stream are serialised; many Streams may share a Detector. Close it when done; closing its Detector makes
// Push return ErrClosed.
type Stream struct {
	mu  sync.Mutex
	d   *Detector
	ptr *C.wf_stream
}

// NewStream starts a stream of windows of window rows (one of Info().WindowSizes) every stride rows.
func (d *Detector) NewStream(window, stride int, seed uint64) (*Stream, error) {
	if window <= 0 || stride <= 0 {
		return nil, &Error{StatusInvalidArgument, fmt.Sprintf("window %d and stride %d must be positive", window, stride)}
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.ptr == nil {
		return nil, ErrClosed
	}
	var ptr *C.wf_stream
	var cerr *C.wf_error
	if status := C.wf_stream_new(d.ptr, C.size_t(window), C.size_t(stride), C.uint64_t(seed), &ptr, &cerr); status != C.WF_STATUS_OK {
		return nil, takeError(status, cerr)
	}
	s := &Stream{d: d, ptr: ptr}
	runtime.SetFinalizer(s, (*Stream).Close)
	return s, nil
}

// Push appends len(rows)/nCols raw rows (row-major) and returns the verdicts of the windows they complete, in
// order. A refused push consumes no row.
func (s *Stream) Push(rows []float32, nCols int) ([]WindowScore, error) {
	if nCols <= 0 || len(rows)%nCols != 0 || len(rows) == 0 {
		return nil, &Error{StatusInvalidArgument, fmt.Sprintf("%d values are not rows of %d features", len(rows), nCols)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ptr == nil {
		return nil, ErrClosed
	}
	// The C stream borrows the detector: hold it open for the call.
	s.d.mu.RLock()
	defer s.d.mu.RUnlock()
	if s.d.ptr == nil {
		return nil, ErrClosed
	}
	nRows := C.size_t(len(rows) / nCols)
	var needed C.size_t
	var cerr *C.wf_error
	if status := C.wf_stream_windows_after(s.ptr, nRows, &needed, &cerr); status != C.WF_STATUS_OK {
		return nil, takeError(status, cerr)
	}
	out := make([]C.wf_window_score, int(needed))
	var outPtr *C.wf_window_score
	if len(out) > 0 {
		outPtr = &out[0]
	}
	var nOut C.size_t
	status := C.wf_stream_push(s.ptr, (*C.float)(unsafe.Pointer(&rows[0])), nRows, C.size_t(nCols), outPtr, needed, &nOut, &cerr)
	runtime.KeepAlive(rows)
	if status != C.WF_STATUS_OK {
		return nil, takeError(status, cerr)
	}
	scores := make([]WindowScore, int(nOut))
	for i := range scores {
		scores[i] = WindowScore{Index: uint64(out[i].index), EndRow: uint64(out[i].end_row), Score: scoreFrom(out[i].score)}
	}
	return scores, nil
}

// Close releases the stream; later Pushes return ErrClosed. Closing twice is harmless.
func (s *Stream) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ptr != nil {
		C.wf_stream_free(s.ptr)
		s.ptr = nil
		runtime.SetFinalizer(s, nil)
	}
	return nil
}
