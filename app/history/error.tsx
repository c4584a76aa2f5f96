'use client';

import { ErrorView, type ErrorProps } from '../components/ErrorView';

export default function HistoryError(props: ErrorProps) {
  return <ErrorView what="History" {...props} />;
}
