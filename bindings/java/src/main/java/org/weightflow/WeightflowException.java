package org.weightflow;

/** A call the library refused: its wf_status code, that code's name, and the library's message. */
public final class WeightflowException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** WF_STATUS_INVALID_ARGUMENT. */
    public static final int INVALID_ARGUMENT = 1;
    /** WF_STATUS_NULL_POINTER. */
    public static final int NULL_POINTER = 2;
    /** WF_STATUS_PANIC. */
    public static final int PANIC = 3;
    /** WF_STATUS_NOT_BUILT_IN. */
    public static final int NOT_BUILT_IN = 4;
    /** WF_STATUS_NOT_A_BUNDLE. */
    public static final int NOT_A_BUNDLE = 100;
    /** WF_STATUS_BUNDLE_CORRUPT. */
    public static final int BUNDLE_CORRUPT = 101;
    /** WF_STATUS_UNSUPPORTED_VERSION. */
    public static final int UNSUPPORTED_VERSION = 102;
    /** WF_STATUS_IO. */
    public static final int IO = 103;
    /** WF_STATUS_ONNXRUNTIME_UNAVAILABLE. */
    public static final int ONNXRUNTIME_UNAVAILABLE = 200;
    /** WF_STATUS_ONNXRUNTIME. */
    public static final int ONNXRUNTIME = 201;
    /** WF_STATUS_DETECT. */
    public static final int DETECT = 300;

    private final int status;
    private final String statusName;

    WeightflowException(int status, String statusName, String message) {
        super(statusName + ": " + message);
        this.status = status;
        this.statusName = statusName;
    }

    /** The wf_status code. */
    public int status() {
        return status;
    }

    /** The code's name as the header spells it, e.g. "WF_STATUS_INVALID_ARGUMENT". */
    public String statusName() {
        return statusName;
    }
}
