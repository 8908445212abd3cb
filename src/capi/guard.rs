//! The one guard every `extern "C"` function goes through, and the argument checks it runs first.
//!
//! [`guard`] catches panics (→ `WF_STATUS_PANIC` with the panic's message) and turns a [`CapiError`] into a
//! status plus, when the caller asked for one, an owned `wf_error`. [`guard_value`] does the same for the few
//! functions that return a value instead of a status. `tests/capi.rs` greps `src/capi` so that no entry point
//! skips them. The `arg_*` helpers check a pointer (NULL, alignment) and a size before anything is read.

use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::error::{wf_error, CapiError};
use super::status::wf_status;

/// Runs `body`; on failure writes an owned error to `*err` (when `err` is non-NULL and aligned) and returns its
/// status. A panic inside `body` becomes `WF_STATUS_PANIC`. `*err` is written only on failure.
pub(crate) fn guard(err: *mut *mut wf_error, body: impl FnOnce() -> Result<(), CapiError>) -> wf_status {
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| Err(CapiError::panic(&*payload)));
    match outcome {
        Ok(()) => wf_status::Ok,
        Err(e) => {
            let status = e.status;
            if !err.is_null() && err.is_aligned() {
                // SAFETY: the caller passes NULL or a writable `wf_error*` slot (checked non-NULL and aligned).
                unsafe { err.write(e.into_raw()) };
            }
            status
        }
    }
}

/// Runs `body` for a function that returns a value, not a status: a panic returns `fallback`.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

fn check_pointer<T>(p: *const T, name: &str) -> Result<(), CapiError> {
    if p.is_null() {
        return Err(CapiError::new(wf_status::NullPointer, format!("`{name}` is NULL")));
    }
    if !p.is_aligned() {
        return Err(CapiError::new(
            wf_status::Misaligned,
            format!("`{name}` is not aligned to {} bytes", std::mem::align_of::<T>()),
        ));
    }
    Ok(())
}

/// A shared reference from a pointer that must not be NULL.
///
/// # Safety
/// A non-NULL, aligned `p` points to a live `T` for `'a`.
pub(crate) unsafe fn arg_ref<'a, T>(p: *const T, name: &str) -> Result<&'a T, CapiError> {
    check_pointer(p, name)?;
    // SAFETY: checked non-NULL and aligned; liveness is the caller's contract.
    Ok(unsafe { &*p })
}

/// An exclusive reference from a pointer that must not be NULL.
///
/// # Safety
/// A non-NULL, aligned `p` points to a live `T` for `'a` that nothing else accesses meanwhile.
pub(crate) unsafe fn arg_mut<'a, T>(p: *mut T, name: &str) -> Result<&'a mut T, CapiError> {
    check_pointer(p.cast_const(), name)?;
    // SAFETY: checked non-NULL and aligned; liveness and exclusivity are the caller's contract.
    Ok(unsafe { &mut *p })
}

/// An out-parameter, checked before any work is done so that a failure leaves it untouched; write it with
/// `ptr.write(value)` once the call has succeeded.
pub(crate) fn arg_out<T>(p: *mut T, name: &str) -> Result<*mut T, CapiError> {
    check_pointer(p.cast_const(), name)?;
    Ok(p)
}

/// `len` elements from `p`; NULL is refused even when `len` is 0 (a zero size is the caller's check).
///
/// # Safety
/// A non-NULL, aligned `p` points to `len` initialised `T`s that live for `'a` and are not written meanwhile.
pub(crate) unsafe fn arg_slice<'a, T>(p: *const T, len: usize, name: &str) -> Result<&'a [T], CapiError> {
    check_pointer(p, name)?;
    check_len::<T>(len, name)?;
    // SAFETY: checked non-NULL, aligned and at most isize::MAX bytes; the rest is the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A caller-allocated buffer of `len` elements to write into.
///
/// # Safety
/// A non-NULL, aligned `p` points to `len` writable `T`s that live for `'a` and are not aliased meanwhile.
pub(crate) unsafe fn arg_slice_mut<'a, T>(p: *mut T, len: usize, name: &str) -> Result<&'a mut [T], CapiError> {
    check_pointer(p.cast_const(), name)?;
    check_len::<T>(len, name)?;
    // SAFETY: as for `arg_slice`, and the caller grants exclusive access.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

fn check_len<T>(len: usize, name: &str) -> Result<(), CapiError> {
    match len.checked_mul(std::mem::size_of::<T>()) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(()),
        _ => Err(CapiError::invalid(format!("`{name}`: {len} elements do not fit in memory"))),
    }
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// A non-NULL `p` points to a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char, name: &str) -> Result<&'a str, CapiError> {
    check_pointer(p, name)?;
    // SAFETY: non-NULL; NUL termination is the caller's contract.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().map_err(|e| CapiError::invalid(format!("`{name}` is not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capi::error::{wf_error_free, wf_error_message, wf_error_status};

    fn message(err: *const wf_error) -> String {
        // SAFETY: `err` is a live error from `guard`.
        unsafe { CStr::from_ptr(wf_error_message(err)) }.to_str().unwrap().to_owned()
    }

    #[test]
    fn success_leaves_err_untouched() {
        let sentinel = 0x10 as *mut wf_error;
        let mut err = sentinel;
        assert_eq!(guard(&mut err, || Ok(())), wf_status::Ok);
        assert_eq!(err, sentinel);
    }

    #[test]
    fn failure_hands_back_status_and_message() {
        let mut err: *mut wf_error = std::ptr::null_mut();
        let status = guard(&mut err, || Err(CapiError::invalid("n_rows is 0")));
        assert_eq!(status, wf_status::InvalidArgument);
        // SAFETY: err was just written by guard.
        assert_eq!(unsafe { wf_error_status(err) }, wf_status::InvalidArgument);
        assert_eq!(message(err), "n_rows is 0");
        // SAFETY: freed once.
        unsafe { wf_error_free(err) };
    }

    #[test]
    fn failure_with_null_err_still_returns_the_status() {
        assert_eq!(guard(std::ptr::null_mut(), || Err(CapiError::invalid("x"))), wf_status::InvalidArgument);
    }

    #[test]
    fn panics_become_panic_status_with_their_message() {
        let mut err: *mut wf_error = std::ptr::null_mut();
        let n = 3;
        let status = guard(&mut err, || panic!("index {n} out of range"));
        assert_eq!(status, wf_status::Panic);
        let m = message(err);
        assert!(m.contains("index 3 out of range"), "{m}");
        // SAFETY: freed once.
        unsafe { wf_error_free(err) };
        assert_eq!(guard_value(7, || panic!("static message")), 7);
    }

    #[test]
    fn interior_nul_is_dropped_not_truncating() {
        let raw = CapiError::invalid("a\0b").into_raw();
        assert_eq!(message(raw), "ab");
        // SAFETY: freed once.
        unsafe { wf_error_free(raw) };
    }

    #[test]
    fn pointer_checks() {
        let x = [1.0f32, 2.0, 3.0];
        // SAFETY: valid pointers and lengths, or NULL/misaligned ones that the checks must refuse before reading.
        unsafe {
            assert_eq!(arg_slice(x.as_ptr(), 3, "rows").unwrap(), &x);
            assert_eq!(arg_slice::<f32>(std::ptr::null(), 0, "rows").unwrap_err().status, wf_status::NullPointer);
            let misaligned = x.as_ptr().cast::<u8>().add(1).cast::<f32>();
            assert_eq!(arg_slice(misaligned, 1, "rows").unwrap_err().status, wf_status::Misaligned);
            let huge = arg_slice(x.as_ptr(), usize::MAX / 2, "rows").unwrap_err();
            assert_eq!(huge.status, wf_status::InvalidArgument);
            assert!(huge.message.contains("rows"), "{}", huge.message);
            assert_eq!(arg_str(c"ok".as_ptr(), "path").unwrap(), "ok");
            let bad = [0xffu8, 0];
            assert_eq!(arg_str(bad.as_ptr().cast(), "path").unwrap_err().status, wf_status::InvalidArgument);
            assert_eq!(arg_ref::<u32>(std::ptr::null(), "det").unwrap_err().message, "`det` is NULL");
        }
    }
}
