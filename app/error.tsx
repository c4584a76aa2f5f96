'use client';

import { ErrorView, type ErrorProps } from './components/ErrorView';

export default function ConsoleError(props: ErrorProps) {
  return <ErrorView what="The console" {...props} />;
}
