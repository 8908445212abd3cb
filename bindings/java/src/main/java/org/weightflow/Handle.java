package org.weightflow;

import com.sun.jna.Pointer;
import java.util.function.Consumer;

/**
 * A native object and the function that frees it, shared with a {@link java.lang.ref.Cleaner} (which must not
 * reach the owning Java object). Frees at most once; {@code ptr} is null afterwards.
 */
final class Handle implements Runnable {
    Pointer ptr;
    private final Consumer<Pointer> free;

    Handle(Pointer ptr, Consumer<Pointer> free) {
        this.ptr = ptr;
        this.free = free;
    }

    @Override
    public void run() {
        if (ptr != null) {
            free.accept(ptr);
            ptr = null;
        }
    }
}
