/* log.h - level-checked logging through the emitter. */
/* SPDX-License-Identifier: MIT */
#ifndef AB_LOG_H
#define AB_LOG_H

#include "ab/emitter.h"

/* The level is checked before the arguments are formatted (redis serverLog). */
#define AB_LOG(em, level, ...)                                                                     \
    do {                                                                                           \
        if (ab_emitter_enabled((em), (level))) {                                                   \
            (void)ab_emitter_log((em), (level), __VA_ARGS__);                                      \
        }                                                                                          \
    } while (0)

#define AB_DEBUG(em, ...) AB_LOG(em, AB_LOG_DEBUG, __VA_ARGS__)
#define AB_INFO(em, ...)  AB_LOG(em, AB_LOG_INFO, __VA_ARGS__)
#define AB_WARN(em, ...)  AB_LOG(em, AB_LOG_WARN, __VA_ARGS__)
#define AB_ERROR(em, ...) AB_LOG(em, AB_LOG_ERROR, __VA_ARGS__)

#endif
