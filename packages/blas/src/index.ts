export { nativeBlas, type NativeBlas, type NativeBlasStatus } from "./native-blas.js";
