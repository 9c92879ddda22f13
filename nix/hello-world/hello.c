/* The assignment's first demo package: a C program that builds. */
#include <stdio.h>

int main(void)
{
	puts("hello world");
	return 0;
}
