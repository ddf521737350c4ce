/* ADAPPROX_API marks what libadapprox exports: the C ABI (adapprox.h) and the C++ API
 * (optimizer.hpp and the headers it includes). Everything else in the library is compiled with
 * hidden visibility, so a host's own copies of the same code (Eigen, say) never clash with it.
 * A static build (ADAPPROX_STATIC, set by the CMake package) exports nothing itself. */
#ifndef ADAPPROX_EXPORT_H
#define ADAPPROX_EXPORT_H

#if defined(ADAPPROX_STATIC)
#define ADAPPROX_API
#elif defined(_WIN32)
#if defined(ADAPPROX_BUILDING_LIBRARY)
#define ADAPPROX_API __declspec(dllexport)
#else
#define ADAPPROX_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define ADAPPROX_API __attribute__((visibility("default")))
#else
#define ADAPPROX_API
#endif

#endif /* ADAPPROX_EXPORT_H */
