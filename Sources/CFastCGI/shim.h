#ifndef LEADIMPORT_CFASTCGI_SHIM_H
#define LEADIMPORT_CFASTCGI_SHIM_H
#include <fcgiapp.h>
#endif
