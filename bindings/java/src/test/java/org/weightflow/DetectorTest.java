package org.weightflow;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DetectorTest {
    @Test
    void loadedLibraryMatchesTheBinding() {
        // A newer library serves this binding too: the ABI is only ever extended.
        assertTrue(Detector.abiVersion() >= Native.ABI_VERSION, "library ABI " + Detector.abiVersion());
        assertTrue(Detector.version().matches("\\d+\\.\\d+\\.\\d+"), Detector.version());
        assertEquals("WF_STATUS_UNSUPPORTED_VERSION", Native.LIB.wf_status_name(102));
        assertEquals("WF_STATUS_UNKNOWN", Native.LIB.wf_status_name(9999));
    }

    @Test
    void openingAMissingBundleThrowsWithAStatus(@TempDir Path dir) {
        Path missing = dir.resolve("missing.wfb");
        WeightflowException e =
                assertThrows(WeightflowException.class, () -> Detector.open(missing, Detector.Options.defaults()));
        // IO from a library with the runtime; NOT_BUILT_IN from one without. Either names the path.
        assertTrue(e.status() == WeightflowException.IO || e.status() == WeightflowException.NOT_BUILT_IN,
                e.getMessage());
        assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
        assertEquals(Native.LIB.wf_status_name(e.status()), e.statusName());
    }

    /** A bundle, a window and the Rust runtime's score of it, written by scripts/test-bindings.sh. */
    record Fixture(Path bundle, float[] rows, int nCols, long seed, double pValue, boolean isShift) {}

    static Fixture fixture() throws IOException {
        String dir = System.getProperty("weightflow.fixture.dir", "");
        assertFalse(dir.isEmpty(),
                "weightflow.fixture.dir is unset: run the tests through scripts/test-bindings.sh, which writes the fixture bundle");
        Path d = Path.of(dir);
        String json = Files.readString(d.resolve("expected.json"));
        List<Float> values = new ArrayList<>();
        int nCols = 0;
        for (String line : Files.readAllLines(d.resolve("window.csv"))) {
            if (line.isBlank()) {
                continue;
            }
            String[] cells = line.split(",");
            nCols = cells.length;
            for (String c : cells) {
                values.add(Float.parseFloat(c.trim()));
            }
        }
        float[] rows = new float[values.size()];
        for (int i = 0; i < rows.length; i++) {
            rows[i] = values.get(i);
        }
        return new Fixture(d.resolve("bundle.wfb"), rows, nCols, Long.parseLong(field(json, "seed")),
                Double.parseDouble(field(json, "p_value")), Boolean.parseBoolean(field(json, "is_shift")));
    }

    private static String field(String json, String name) {
        Matcher m = Pattern.compile("\"" + name + "\"\\s*:\\s*([^,}\\s]+)").matcher(json);
        assertTrue(m.find(), name + " missing from " + json);
        return m.group(1);
    }

    @Test
    void scoreMatchesTheRustRuntime() throws IOException {
        Fixture f = fixture();
        try (Detector d = Detector.open(f.bundle(), Detector.Options.defaults())) {
            assertEquals(f.nCols(), d.info().nFeatures());
            Detector.Score s = d.score(f.rows(), f.nCols(), f.seed());
            assertEquals(f.pValue(), s.pValue(), 1e-6);
            assertEquals(f.isShift(), s.isShift());
            assertEquals(3 * d.info().nParams(), d.generate(3, 5).length);
        }
    }

    @Test
    void theCudaProviderGeneratesOrFailsWithoutFallingBack() throws IOException {
        Fixture f = fixture();
        // The fixture stores its pool: open only reads and scoring runs on the CPU; generation builds the session.
        try (Detector d = Detector.open(f.bundle(), new Detector.Options(null, 0, Detector.Provider.CUDA, 0))) {
            assertEquals(f.pValue(), d.score(f.rows(), f.nCols(), f.seed()).pValue(), 1e-6);
            try {
                assertEquals(2 * d.info().nParams(), d.generate(2, 0).length);
            } catch (WeightflowException e) {
                // An onnxruntime without the CUDA provider must say so, not run on the CPU.
                assertEquals("WF_STATUS_ONNXRUNTIME", e.statusName(), e.getMessage());
                assertTrue(e.getMessage().contains("CUDA"), e.getMessage());
            }
        }
    }

    @Test
    void aStreamScoresEachWindowLikeScoreWithSeedPlusIndex() throws IOException {
        Fixture f = fixture();
        Detector d = Detector.open(f.bundle(), Detector.Options.defaults());
        int n = f.rows().length / f.nCols();
        float[] twice = new float[2 * f.rows().length];
        System.arraycopy(f.rows(), 0, twice, 0, f.rows().length);
        System.arraycopy(f.rows(), 0, twice, f.rows().length, f.rows().length);
        int cut = (n / 2) * f.nCols();
        try (Stream s = d.stream(n, n, 7)) {
            // The fixture window twice, in two uneven parts: windows 0 and 1 are that window, seeds 7 and 8.
            assertEquals(0, s.push(java.util.Arrays.copyOfRange(twice, 0, cut), f.nCols()).size());
            List<Stream.WindowScore> got = s.push(java.util.Arrays.copyOfRange(twice, cut, twice.length), f.nCols());
            assertEquals(2, got.size());
            for (int k = 0; k < 2; k++) {
                assertEquals(k, got.get(k).index());
                assertEquals((long) (k + 1) * n, got.get(k).endRow());
                assertEquals(d.score(f.rows(), f.nCols(), 7 + k), got.get(k).score());
            }
            WeightflowException e = assertThrows(WeightflowException.class, () -> d.stream(n + 1, 1, 0));
            assertEquals(WeightflowException.INVALID_ARGUMENT, e.status());
            d.close();
            assertThrows(IllegalStateException.class, () -> s.push(f.rows(), f.nCols()));
        }
    }

    @Test
    void badWindowsAreRefusedWithInvalidArgument() throws IOException {
        Fixture f = fixture();
        try (Detector d = Detector.open(f.bundle(), Detector.Options.defaults())) {
            float[] nan = f.rows().clone();
            nan[0] = Float.NaN;
            WeightflowException e = assertThrows(WeightflowException.class, () -> d.score(nan, f.nCols(), 0));
            assertEquals(WeightflowException.INVALID_ARGUMENT, e.status());
            float[] wide = new float[f.nCols() + 1];
            e = assertThrows(WeightflowException.class, () -> d.score(wide, f.nCols() + 1, 0));
            assertEquals(WeightflowException.INVALID_ARGUMENT, e.status());
        }
    }

    @Test
    void eightThreadsScoreOneDetectorLikeOne() throws Exception {
        Fixture f = fixture();
        Detector d = Detector.open(f.bundle(), Detector.Options.defaults());
        double[] sequential = new double[16];
        for (int i = 0; i < sequential.length; i++) {
            sequential[i] = d.score(f.rows(), f.nCols(), i).pValue();
        }
        ExecutorService pool = Executors.newFixedThreadPool(8);
        List<Future<Double>> futures = new ArrayList<>();
        for (int i = 0; i < sequential.length; i++) {
            long seed = i;
            futures.add(pool.submit(() -> d.score(f.rows(), f.nCols(), seed).pValue()));
        }
        double[] parallel = new double[sequential.length];
        for (int i = 0; i < parallel.length; i++) {
            parallel[i] = futures.get(i).get();
        }
        pool.shutdown();
        assertArrayEquals(sequential, parallel, 0.0);
        d.close();
        assertThrows(IllegalStateException.class, () -> d.score(f.rows(), f.nCols(), 0));
        d.close();
    }
}
