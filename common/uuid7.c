#include "common/uuid7.h"
