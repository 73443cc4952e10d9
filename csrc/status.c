/* status.c - status strings and the runtime version. */
#include "ua_internal.h"

const char *ua_strerror(int status)
{
    switch (status) {
    case UA_OK: return "success";
    case UA_E_INVAL: return "invalid argument";
    case UA_E_NOMEM: return "out of memory";
    case UA_E_RANGE: return "address or size out of range";
    case UA_E_ALIGN: return "address or size misaligned";
    case UA_E_OVERLAP: return "memory descriptors overlap";
    case UA_E_EMPTY: return "memory descriptor has no pages";
    case UA_E_UNIT_SIZE: return "unit size is not a power of two from 4096 to 2^31";
    case UA_E_TOO_LARGE: return "bitmap would exceed 256 MiB";
    case UA_E_VERSION: return "unknown unaccepted-memory table version";
    case UA_E_TRUNCATED: return "input shorter than its header says";
    case UA_E_BUFFER: return "output buffer too small";
    case UA_E_OP: return "unknown operation";
    case UA_E_STATE: return "operation not allowed in the current state";
    case UA_E_VCPU: return "vCPU index out of range";
    case UA_E_ACCEPT_FAILED: return "the accept primitive failed";
    case UA_E_GUEST_TERMINATED: return "the guest requested termination";
    case UA_E_GUEST_PANIC: return "the guest kernel panicked";
    case UA_E_FAULT: return "unrecoverable architectural fault";
    case UA_E_HOST: return "the host refused the request";
    case UA_E_CALLBACK: return "a callback failed";
    case UA_E_GUEST_HUNG: return "the guest hangs: the host never resolves its exit";
    case UA_E_INTERRUPTED: return "interrupted: the cancel flag was set";
    default: return "unknown status";
    }
}

uint32_t ua_version(void)
{
    return (UA_VERSION_MAJOR << 16) | (UA_VERSION_MINOR << 8) | UA_VERSION_PATCH;
}

const char *ua_version_string(void) { return UA_VERSION_STRING; }
