package org.weightflow;

import com.sun.jna.IntegerType;
import com.sun.jna.Library;
import com.sun.jna.Pointer;
import com.sun.jna.Structure;
import com.sun.jna.ptr.PointerByReference;

/** The wf_ C ABI of include/weightflow.h as JNA sees it; package-private: {@link Detector} is the API. */
final class Native {
    private Native() {}

    /** The ABI this binding was written against (WF_ABI_VERSION of the header); a newer library serves it too. */
    static final int ABI_VERSION = 3;

    /** C size_t. */
    public static final class SizeT extends IntegerType {
        public SizeT() {
            this(0);
        }

        public SizeT(long value) {
            super(com.sun.jna.Native.SIZE_T_SIZE, value, true);
        }
    }

    /** wf_open_options. */
    @Structure.FieldOrder({"struct_size", "onnxruntime_path", "threads"})
    public static class OpenOptions extends Structure {
        public SizeT struct_size;
        public String onnxruntime_path;
        public int threads;

        /** Returned by value from wf_open_options_default. */
        public static class ByValue extends OpenOptions implements Structure.ByValue {}
    }

    /** wf_info. */
    @Structure.FieldOrder({"n_features", "n_classes", "n_params", "ensemble_size", "window_sizes", "n_window_sizes",
            "bundle_version", "abi_version"})
    public static class Info extends Structure {
        public SizeT n_features;
        public SizeT n_classes;
        public SizeT n_params;
        public SizeT ensemble_size;
        public Pointer window_sizes;
        public SizeT n_window_sizes;
        public int bundle_version;
        public int abi_version;
    }

    /** wf_score. */
    @Structure.FieldOrder({"p_value", "statistic", "threshold", "disagreement", "entropy_p", "ensemble_size",
            "is_shift"})
    public static class Score extends Structure {
        public double p_value;
        public double statistic;
        public double threshold;
        public double disagreement;
        public double entropy_p;
        public SizeT ensemble_size;
        public byte is_shift;
    }

    /** wf_window_score (ABI 2). */
    @Structure.FieldOrder({"index", "end_row", "score"})
    public static class WindowScore extends Structure {
        public long index;
        public long end_row;
        public Score score;
    }

    /** The exported functions. */
    interface Lib extends Library {
        int wf_abi_version();

        String wf_version();

        String wf_status_name(int status);

        int wf_error_status(Pointer err);

        String wf_error_message(Pointer err);

        void wf_error_free(Pointer err);

        OpenOptions.ByValue wf_open_options_default();

        int wf_detector_open(String path, OpenOptions options, PointerByReference out, PointerByReference err);

        int wf_detector_open_with_provider(String path, OpenOptions options, int provider, int cudaDevice,
                PointerByReference out, PointerByReference err);

        void wf_detector_free(Pointer det);

        int wf_detector_info(Pointer det, Info out, PointerByReference err);

        int wf_detector_score(Pointer det, float[] rows, SizeT nRows, SizeT nCols, long seed, Score out,
                PointerByReference err);

        int wf_detector_generate(Pointer det, SizeT n, long seed, float[] out, SizeT outLen, PointerByReference err);

        int wf_stream_new(Pointer det, SizeT window, SizeT stride, long seed, PointerByReference out,
                PointerByReference err);

        void wf_stream_free(Pointer stream);

        int wf_stream_windows_after(Pointer stream, SizeT nRows, Pointer out, PointerByReference err);

        int wf_stream_push(Pointer stream, float[] rows, SizeT nRows, SizeT nCols, WindowScore out, SizeT outCap,
                Pointer nOut, PointerByReference err);
    }

    /** A size_t read back from memory the library wrote. */
    static long readSizeT(Pointer p) {
        return com.sun.jna.Native.SIZE_T_SIZE == 8 ? p.getLong(0) : Integer.toUnsignedLong(p.getInt(0));
    }

    /** The library, loaded once (from jna.library.path or the system's search path) and ABI-checked. */
    static final Lib LIB = load();

    private static Lib load() {
        Lib lib = com.sun.jna.Native.load("weightflow", Lib.class);
        int abi = lib.wf_abi_version();
        if (abi < ABI_VERSION) {
            throw new UnsatisfiedLinkError(
                    "libweightflow has ABI " + abi + ", this binding was written against " + ABI_VERSION);
        }
        return lib;
    }

    /** Throws the owned error a failed call handed back (and frees it); does nothing on success. */
    static void check(int status, PointerByReference err) {
        if (status == 0) {
            return;
        }
        Pointer e = err.getValue();
        String message = "(no detail)";
        if (e != null) {
            message = LIB.wf_error_message(e);
            LIB.wf_error_free(e);
        }
        throw new WeightflowException(status, LIB.wf_status_name(status), message);
    }
}
