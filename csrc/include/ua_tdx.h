/*
 * ua_tdx.h - placeholder for the TDX model (filled in by its own change).
 * Included by unaccepted.h; do not include directly.
 */
#ifndef UA_TDX_H
#define UA_TDX_H

#ifdef __cplusplus
extern "C" {
#endif

/* UA_CDEF_BEGIN */
/* UA_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* UA_TDX_H */
