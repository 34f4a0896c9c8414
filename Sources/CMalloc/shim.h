#ifndef LEADIMPORT_CMALLOC_SHIM_H
#define LEADIMPORT_CMALLOC_SHIM_H
/* glibc's malloc tuning calls (malloc_trim), which Swift's Glibc module leaves out. */
#include <malloc.h>
#endif
