//! Owned error objects: a failed call hands back a `wf_error` with its status and a message, so the detail
//! travels with the call (no thread-local "last error": Go moves goroutines between OS threads).

use std::ffi::{c_char, CString};

use super::guard::guard_value;
use super::status::wf_status;

/// A failure: its status and a human-readable message. Created by the library when a call fails and the caller
/// passed a non-NULL `err`; owned by the caller, who releases it with `wf_error_free`. Immutable: reading it
/// from several threads is safe.
pub struct wf_error {
    status: wf_status,
    message: CString,
}

/// A failure inside the library, before it becomes a `wf_error` at the boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CapiError {
    pub(crate) status: wf_status,
    pub(crate) message: String,
}

/// A failure of the detect layer (a stream's windows, scoring) has the status `runtime::RuntimeError::Detect`
/// maps to, so a caller sees one code for it whichever path raised it.
impl From<crate::detect::DetectError> for CapiError {
    fn from(e: crate::detect::DetectError) -> Self {
        CapiError::new(wf_status::Detect, e.to_string())
    }
}

impl CapiError {
    pub(crate) fn new(status: wf_status, message: impl Into<String>) -> Self {
        CapiError { status, message: message.into() }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        CapiError::new(wf_status::InvalidArgument, message)
    }

    /// The error for a caught panic, with the panic's message when it carried one.
    pub(crate) fn panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let detail = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        CapiError::new(wf_status::Panic, format!("internal error (a bug in weightflow, please report it): {detail}"))
    }

    pub(crate) fn into_raw(self) -> *mut wf_error {
        // A message with an interior NUL would be cut short by C; drop the NULs rather than the message.
        let bytes: Vec<u8> = self.message.into_bytes().into_iter().filter(|&b| b != 0).collect();
        let message = CString::new(bytes).expect("NUL bytes were removed");
        Box::into_raw(Box::new(wf_error { status: self.status, message }))
    }
}

/// The status of `err`, or `WF_STATUS_NULL_POINTER` when `err` is NULL.
///
/// # Safety
/// `err` is NULL or a live `wf_error` returned by this library.
#[no_mangle]
pub unsafe extern "C" fn wf_error_status(err: *const wf_error) -> wf_status {
    guard_value(wf_status::Panic, || {
        // SAFETY: the caller passes NULL or a live error (checked for NULL here).
        match unsafe { err.as_ref() } {
            Some(e) => e.status,
            None => wf_status::NullPointer,
        }
    })
}

/// The message of `err`: NUL-terminated UTF-8, owned by `err` and valid until `wf_error_free(err)`; the caller
/// must not free it. Returns NULL when `err` is NULL.
///
/// # Safety
/// `err` is NULL or a live `wf_error` returned by this library.
#[no_mangle]
pub unsafe extern "C" fn wf_error_message(err: *const wf_error) -> *const c_char {
    guard_value(std::ptr::null(), || {
        // SAFETY: the caller passes NULL or a live error (checked for NULL here).
        match unsafe { err.as_ref() } {
            Some(e) => e.message.as_ptr(),
            None => std::ptr::null(),
        }
    })
}

/// Releases an error returned by this library. `wf_error_free(NULL)` does nothing. After the call `err` and its
/// message are dangling.
///
/// # Safety
/// `err` is NULL or a live `wf_error` returned by this library, freed at most once.
#[no_mangle]
pub unsafe extern "C" fn wf_error_free(err: *mut wf_error) {
    guard_value((), || {
        if !err.is_null() {
            // SAFETY: `err` came from `CapiError::into_raw` (Box::into_raw) and is freed once, by contract.
            drop(unsafe { Box::from_raw(err) });
        }
    })
}
