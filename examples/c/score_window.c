/*
 * Opens a weightflow bundle, scores one window of raw inputs from a CSV file and prints the verdict as JSON.
 *
 *   score_window BUNDLE WINDOW.csv [SEED]
 *
 * WINDOW.csv: one row per input, comma-separated features (a first line that does not parse as numbers is
 * taken as a header and skipped). onnxruntime is found through ORT_DYLIB_PATH. Exit status: 0 on success,
 * 1 on a usage or CSV error, 2 when the library refuses the call (its status and message go to stderr).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weightflow.h"

/* Reports a failed wf_ call and releases its error. */
static int fail(const char *what, wf_status status, wf_error *err) {
    fprintf(stderr, "%s failed: %s (%u): %s\n", what, wf_status_name(status), (unsigned)status,
            err ? wf_error_message(err) : "(no detail)");
    wf_error_free(err);
    return 2;
}

/* Reads a CSV of floats into a malloc'ed row-major array; returns 0 and sets *rows, *n_rows, *n_cols. */
static int read_csv(const char *path, float **rows, size_t *n_rows, size_t *n_cols) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    char line[1 << 16];
    size_t cap = 0, len = 0, cols = 0, row = 0;
    float *data = NULL;
    int status = 0;
    while (fgets(line, sizeof line, f)) {
        size_t here = 0;
        char *p = line;
        int ok = 1;
        while (*p && *p != '\n' && *p != '\r') {
            char *end;
            float v = strtof(p, &end);
            if (end == p) { ok = 0; break; }
            if (len == cap) {
                cap = cap ? 2 * cap : 256;
                float *grown = realloc(data, cap * sizeof *data);
                if (!grown) { status = 1; goto done; }
                data = grown;
            }
            data[len++] = v;
            here++;
            p = end;
            if (*p == ',') p++;
        }
        if (!ok) {
            if (row == 0 && len == 0) continue; /* header line */
            fprintf(stderr, "%s: row %zu is not a list of numbers\n", path, row + 1);
            status = 1;
            goto done;
        }
        if (here == 0) continue;
        if (cols == 0) cols = here;
        if (here != cols) {
            fprintf(stderr, "%s: row %zu has %zu values, the first had %zu\n", path, row + 1, here, cols);
            status = 1;
            goto done;
        }
        row++;
    }
    if (row == 0) {
        fprintf(stderr, "%s: no rows\n", path);
        status = 1;
    }
done:
    fclose(f);
    if (status != 0) {
        free(data);
        return status;
    }
    *rows = data;
    *n_rows = row;
    *n_cols = cols;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s BUNDLE WINDOW.csv [SEED]\n", argv[0]);
        return 1;
    }
    if (wf_abi_version() < WF_ABI_VERSION) {
        fprintf(stderr, "libweightflow has ABI %u, this program was built against %u\n", wf_abi_version(),
                (unsigned)WF_ABI_VERSION);
        return 1;
    }
    uint64_t seed = argc == 4 ? strtoull(argv[3], NULL, 10) : 0;

    float *rows = NULL;
    size_t n_rows = 0, n_cols = 0;
    if (read_csv(argv[2], &rows, &n_rows, &n_cols) != 0) return 1;

    wf_open_options options = wf_open_options_default(); /* onnxruntime from ORT_DYLIB_PATH */
    wf_detector *det = NULL;
    wf_error *err = NULL;
    wf_status status = wf_detector_open(argv[1], &options, &det, &err);
    if (status != WF_STATUS_OK) {
        free(rows);
        return fail("wf_detector_open", status, err);
    }

    wf_score score;
    status = wf_detector_score(det, rows, n_rows, n_cols, seed, &score, &err);
    free(rows);
    if (status != WF_STATUS_OK) {
        wf_detector_free(det);
        return fail("wf_detector_score", status, err);
    }
    printf("{\"p_value\": %.17g, \"statistic\": %.17g, \"threshold\": %.17g, \"is_shift\": %s, "
           "\"disagreement\": %.17g, \"entropy_p\": %.17g, \"ensemble_size\": %zu, \"n_rows\": %zu}\n",
           score.p_value, score.statistic, score.threshold, score.is_shift ? "true" : "false", score.disagreement,
           score.entropy_p, score.ensemble_size, n_rows);
    wf_detector_free(det);
    return 0;
}
