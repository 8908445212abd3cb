package org.weightflow;

import com.sun.jna.Pointer;
import com.sun.jna.ptr.PointerByReference;
import java.lang.ref.Cleaner;
import java.nio.file.Path;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * An opened weightflow bundle: scores windows of live inputs for harmful covariate shift.
 *
 * <p>Thread-safe: many threads may {@link #score} and {@link #generate} at once. Close it (try-with-resources);
 * a {@link Cleaner} frees a forgotten one as a backstop.
 */
public final class Detector implements AutoCloseable {
    private static final Cleaner CLEANER = Cleaner.create();

    /**
     * How to open a bundle: onnxruntime's shared library (null: ORT_DYLIB_PATH), its thread count (0: its
     * default), and where it runs the meta-model: generation, and the pool of a bundle that stores none; scoring
     * runs on the CPU either way. {@link Provider#CUDA} on GPU {@code cudaDevice} needs an onnxruntime with the
     * CUDA provider (the onnxruntime-gpu wheel) and fails rather than falling back to the CPU.
     */
    public record Options(Path onnxruntime, int threads, Provider provider, int cudaDevice) {
        /** The CPU provider. */
        public Options(Path onnxruntime, int threads) {
            this(onnxruntime, threads, Provider.CPU, 0);
        }

        /** All defaults. */
        public static Options defaults() {
            return new Options(null, 0);
        }
    }

    /** onnxruntime's execution providers (WF_PROVIDER_* of the header). */
    public enum Provider {
        /** onnxruntime's CPU provider. */
        CPU(0),
        /** onnxruntime's CUDA provider. */
        CUDA(1);

        final int code;

        Provider(int code) {
            this.code = code;
        }
    }

    /** What the bundle scores and generates. */
    public record Info(int nFeatures, int nClasses, int nParams, int ensembleSize, long[] windowSizes,
            int bundleVersion, int abiVersion) {}

    /** The verdict on one window. */
    public record Score(double pValue, double statistic, double threshold, double disagreement, double entropyP,
            int ensembleSize, boolean isShift) {}

    // score/generate hold the read lock; close the write lock, so no call races wf_detector_free.
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private final Handle handle;
    private final Cleaner.Cleanable cleanable;
    private final Info info;

    private Detector(Pointer ptr) {
        this.handle = new Handle(ptr, Native.LIB::wf_detector_free);
        this.cleanable = CLEANER.register(this, handle);
        Native.Info ci = new Native.Info();
        PointerByReference err = new PointerByReference();
        Native.check(Native.LIB.wf_detector_info(ptr, ci, err), err);
        int n = (int) ci.n_window_sizes.longValue();
        long[] sizes = new long[n];
        for (int i = 0; i < n; i++) {
            sizes[i] = ci.window_sizes.getLong((long) i * com.sun.jna.Native.SIZE_T_SIZE);
        }
        this.info = new Info(ci.n_features.intValue(), ci.n_classes.intValue(), ci.n_params.intValue(),
                ci.ensemble_size.intValue(), sizes, ci.bundle_version, ci.abi_version);
    }

    /** Opens the bundle at {@code bundle}; throws {@link WeightflowException} with the library's status. */
    public static Detector open(Path bundle, Options options) {
        Native.OpenOptions o = Native.LIB.wf_open_options_default();
        if (options.onnxruntime() != null) {
            o.onnxruntime_path = options.onnxruntime().toString();
        }
        o.threads = options.threads();
        PointerByReference out = new PointerByReference();
        PointerByReference err = new PointerByReference();
        int status = Native.LIB.wf_detector_open_with_provider(
                bundle.toString(), o, options.provider().code, options.cudaDevice(), out, err);
        Native.check(status, err);
        return new Detector(out.getValue());
    }

    /** The library's version ("MAJOR.MINOR.PATCH"). */
    public static String version() {
        return Native.LIB.wf_version();
    }

    /** The loaded library's ABI version (checked against this binding's when the library loads). */
    public static int abiVersion() {
        return Native.LIB.wf_abi_version();
    }

    /** What the bundle scores and generates (read at open). */
    public Info info() {
        return info;
    }

    /** Scores one window: {@code rows} holds rows.length / nCols raw inputs of nCols features, row-major. */
    public Score score(float[] rows, int nCols, long seed) {
        if (nCols <= 0 || rows.length % nCols != 0) {
            throw new IllegalArgumentException(rows.length + " values are not rows of " + nCols + " features");
        }
        lock.readLock().lock();
        try {
            Pointer ptr = live();
            Native.Score s = new Native.Score();
            PointerByReference err = new PointerByReference();
            int status = Native.LIB.wf_detector_score(ptr, rows, new Native.SizeT(rows.length / nCols),
                    new Native.SizeT(nCols), seed, s, err);
            Native.check(status, err);
            return new Score(s.p_value, s.statistic, s.threshold, s.disagreement, s.entropy_p,
                    s.ensemble_size.intValue(), s.is_shift != 0);
        } finally {
            lock.readLock().unlock();
        }
    }

    /** n classifiers' flat weights, n × info().nParams() values row-major, from seed. */
    public float[] generate(int n, long seed) {
        lock.readLock().lock();
        try {
            Pointer ptr = live();
            float[] out = new float[Math.max(n, 0) * info.nParams()];
            PointerByReference err = new PointerByReference();
            Native.check(Native.LIB.wf_detector_generate(ptr, new Native.SizeT(Math.max(n, 0)), seed, out,
                    new Native.SizeT(out.length), err), err);
            return out;
        } finally {
            lock.readLock().unlock();
        }
    }

    /**
     * A sliding-window detector over this one: windows of {@code window} rows (one of {@code info().windowSizes()})
     * every {@code stride} rows, window k scored like {@link #score} with seed {@code seed + k}.
     */
    public Stream stream(int window, int stride, long seed) {
        if (window <= 0 || stride <= 0) {
            throw new IllegalArgumentException("window " + window + " and stride " + stride + " must be positive");
        }
        return withLive(ptr -> {
            PointerByReference out = new PointerByReference();
            PointerByReference err = new PointerByReference();
            Native.check(Native.LIB.wf_stream_new(ptr, new Native.SizeT(window), new Native.SizeT(stride), seed, out,
                    err), err);
            return new Stream(this, out.getValue());
        });
    }

    /** Runs {@code call} on the live native handle under the read lock (so close cannot free it meanwhile). */
    <T> T withLive(java.util.function.Function<Pointer, T> call) {
        lock.readLock().lock();
        try {
            return call.apply(live());
        } finally {
            lock.readLock().unlock();
        }
    }

    private Pointer live() {
        if (handle.ptr == null) {
            throw new IllegalStateException("the detector is closed");
        }
        return handle.ptr;
    }

    /** Releases the native detector; later calls throw IllegalStateException. Closing twice is harmless. */
    @Override
    public void close() {
        lock.writeLock().lock();
        try {
            cleanable.clean();
        } finally {
            lock.writeLock().unlock();
        }
    }
}
