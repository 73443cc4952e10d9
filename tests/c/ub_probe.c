/* Not a unit test (make check runs tests/c/test_*.c only): tests/c/test_fuzz.py
 * builds it as a check target under SAN=undefined to see that a UBSan finding
 * stops the run instead of being printed and passed over. */
#include <limits.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    int x = INT_MAX - 1 + argc; /* INT_MAX when run without arguments */
    x += argc;                  /* signed overflow: undefined behaviour */
    printf("%d\n", x);
    return 0;
}
