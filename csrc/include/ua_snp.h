/*
 * ua_snp.h - placeholder for the SNP model (filled in by its own change).
 * Included by unaccepted.h; do not include directly.
 */
#ifndef UA_SNP_H
#define UA_SNP_H

#ifdef __cplusplus
extern "C" {
#endif

/* UA_CDEF_BEGIN */
/* UA_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* UA_SNP_H */
