#include "common/jose.h"
