/* Minimal test harness for the C unit tests: CHECK counts failures. */
#ifndef UA_TEST_H
#define UA_TEST_H
#include <stdio.h>

static int ua_test_failures, ua_test_checks;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        ua_test_checks++;                                                             \
        if (!(cond)) {                                                                \
            ua_test_failures++;                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
        }                                                                             \
    } while (0)

#define CHECK_EQ(a, b) CHECK((a) == (b))

static inline int ua_test_report(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, ua_test_checks - ua_test_failures,
           ua_test_failures);
    return ua_test_failures != 0;
}
#endif
