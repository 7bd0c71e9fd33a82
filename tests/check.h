/* The tests' one assertion that counts instead of aborting, so that a run reports every failure. */
#ifndef LLM8_TEST_CHECK_H
#define LLM8_TEST_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                                                                        \
    do {                                                                                                        \
        if (!(cond)) {                                                                                          \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                         \
            printf(__VA_ARGS__);                                                                                \
            printf("\n");                                                                                       \
            failures++;                                                                                         \
        }                                                                                                       \
    } while (0)

#endif
