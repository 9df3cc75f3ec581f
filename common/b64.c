#include "common/b64.h"
