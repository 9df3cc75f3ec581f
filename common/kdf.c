#include "common/kdf.h"
