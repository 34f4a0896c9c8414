#ifndef LEADIMPORT_CLIBPQ_SHIM_H
#define LEADIMPORT_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
