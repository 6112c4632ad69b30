#pragma once
#ifndef HBF_VERSION
#define HBF_VERSION "0.0.0"
#endif
