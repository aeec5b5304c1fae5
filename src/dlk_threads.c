/* Thread-count queries for dlkern._openmp. omp_get_max_threads honours
 * OMP_NUM_THREADS and threadpoolctl's limits, so that is dlkern's default. */
#include "dlk_common.h"

int dlk_omp_max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int dlk_have_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
