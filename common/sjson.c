#include "common/sjson.h"
