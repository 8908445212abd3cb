package org.weightflow;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;
import com.sun.jna.ptr.PointerByReference;
import java.lang.ref.Cleaner;
import java.util.ArrayList;
import java.util.List;

/**
 * A sliding-window detector over a {@link Detector} (ABI 2): windows of a calibrated size every {@code stride}
 * rows; window k holds stream rows [k·stride, k·stride + window) and is scored like {@link Detector#score} with
 * seed {@code seed + k}, so each window's false-alarm rate is the bundle's alpha.
 *
 * <p>Calls on one stream are serialised; many streams may share a detector. Close it (try-with-resources);
 * after its detector is closed, {@link #push} throws IllegalStateException.
 */
public final class Stream implements AutoCloseable {
    private static final Cleaner CLEANER = Cleaner.create();

    /** One completed window's verdict: its index, the stream rows seen when it completed, the score. */
    public record WindowScore(long index, long endRow, Detector.Score score) {}

    private final Detector detector;
    private final Handle handle;
    private final Cleaner.Cleanable cleanable;

    Stream(Detector detector, Pointer ptr) {
        this.detector = detector;
        this.handle = new Handle(ptr, Native.LIB::wf_stream_free);
        this.cleanable = CLEANER.register(this, handle);
    }

    /**
     * Appends rows.length / nCols raw rows (row-major) and returns the verdicts of the windows they complete, in
     * order. A refused push consumes no row.
     */
    public synchronized List<WindowScore> push(float[] rows, int nCols) {
        if (nCols <= 0 || rows.length == 0 || rows.length % nCols != 0) {
            throw new IllegalArgumentException(rows.length + " values are not rows of " + nCols + " features");
        }
        if (handle.ptr == null) {
            throw new IllegalStateException("the stream is closed");
        }
        Pointer stream = handle.ptr;
        // The native stream borrows the detector: hold it open for the call.
        return detector.withLive(det -> {
            Native.SizeT nRows = new Native.SizeT(rows.length / nCols);
            PointerByReference err = new PointerByReference();
            Memory count = new Memory(com.sun.jna.Native.SIZE_T_SIZE);
            Native.check(Native.LIB.wf_stream_windows_after(stream, nRows, count, err), err);
            int needed = (int) Native.readSizeT(count);
            Native.WindowScore[] out =
                    needed == 0 ? null : (Native.WindowScore[]) new Native.WindowScore().toArray(needed);
            Memory nOut = new Memory(com.sun.jna.Native.SIZE_T_SIZE);
            Native.check(Native.LIB.wf_stream_push(stream, rows, nRows, new Native.SizeT(nCols),
                    out == null ? null : out[0], new Native.SizeT(needed), nOut, err), err);
            List<WindowScore> scores = new ArrayList<>();
            for (int i = 0; i < (int) Native.readSizeT(nOut); i++) {
                out[i].read();
                Native.Score s = out[i].score;
                scores.add(new WindowScore(out[i].index, out[i].end_row, new Detector.Score(s.p_value, s.statistic,
                        s.threshold, s.disagreement, s.entropy_p, s.ensemble_size.intValue(), s.is_shift != 0)));
            }
            return scores;
        });
    }

    /** Releases the native stream; later pushes throw IllegalStateException. Closing twice is harmless. */
    @Override
    public synchronized void close() {
        cleanable.clean();
    }
}
