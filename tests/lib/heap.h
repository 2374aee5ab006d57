/* A counting, fault-injecting heap for unit tests (in the manner of raft's
 * and dqlite's test/lib/heap.c and fault.c): installed through
 * ch_heap_set(), it counts the allocations that are live, so a test can
 * check that an operation freed everything it took, and it can fail the
 * allocations after the first `delay` ones, `repeat` times, so the
 * out-of-memory paths run.
 *
 * Typical use, to run an operation with each of its allocations failing
 * in turn:
 *
 *     for (int i = 0;; i++) {
 *         test_heap_setup();
 *         test_heap_fault_config(i, 1);
 *         ... the operation; check it failed cleanly or succeeded ...
 *         bool hit = test_heap_fault_hits() > 0;
 *         test_heap_tear_down();          // fails the test on a leak
 *         if (!hit) break;                // every allocation was tried
 *     }
 */
#ifndef CHORUS_TESTS_LIB_HEAP_H
#define CHORUS_TESTS_LIB_HEAP_H

#include <stddef.h>

/* Starts counting (no faults). The first call installs the heap for the
 * rest of the process: call it before the code under test allocates. */
void test_heap_setup(void);
/* Stops faults; fails the test (cmocka) if allocations made since setup
 * are still live. */
void test_heap_tear_down(void);
/* Fails allocations after `delay` more succeed, `repeat` times (-1: all
 * from then on). */
void test_heap_fault_config(int delay, int repeat);
/* Stops failing allocations. */
void test_heap_fault_off(void);
/* Allocations that were failed so far. */
unsigned test_heap_fault_hits(void);
/* Runs run(arg, i) for i = 0, 1, 2, ...: each run sets up its world (with
 * test_heap_setup), calls test_heap_fault_config(i, 1) once the operation
 * under test is about to start, runs it, checks the outcome, calls
 * test_heap_fault_off() and tears down (test_heap_tear_down: no leak).
 * Stops after the first run in which no allocation failed: each one was
 * failed once. Fails the test if that takes fewer than min_runs runs (the
 * operation allocates less than expected: the test would prove nothing)
 * or more than max_runs. Prints and returns the runs made. */
unsigned test_heap_each_fault(void (*run)(void *arg, int i), void *arg,
                              unsigned min_runs, unsigned max_runs);
/* Allocations live now (made since setup and not freed). */
long test_heap_live(void);

#endif
